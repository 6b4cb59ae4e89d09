import type { RequestHandler } from 'express';
import type { IncidentPoller } from './incident-poller.js';
import type { Runtime } from './runtime.js';
import type { Mounts } from './server.js';
import type { TeamsWiring } from './teams/index.js';

/** The chat platforms and extras a configuration turns on, ready to mount on the one HTTP port. */
export interface Platforms {
  mounts: Mounts;
  poller?: IncidentPoller;
}

/**
 * Slack when configured, Teams (with an app id; in local mode for this machine only; otherwise its
 * endpoint answers 401), the preview page in local mode, and the Graph poller when `GRAPH_POLL_SECONDS`
 * and an app registration are set. Call
 * before `runtime.queue.start()`: each platform registers its card publisher.
 *
 * Each platform's code (Bolt, Bot Framework, the preview's renderers, the Graph client) is loaded only
 * when the configuration turns it on: unused SDKs would hold tens of megabytes for the life of the
 * process. With Teams off, Bot Framework is loaded by the first request to `/api/messages` (to answer it
 * 401 as the Teams wiring does).
 */
export async function createPlatforms(
  runtime: Runtime,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Platforms> {
  const { config } = runtime;
  const slack = config.slack ? (await import('./slack/create-slack.js')).createSlack(runtime) : undefined;
  const teamsOff = !config.teams.authEnabled && !config.localMode;
  const teams = teamsOff
    ? { handler: teamsOnFirstRequest(runtime, env) }
    : (await import('./teams/index.js')).createTeams(runtime, env);
  let poller: IncidentPoller | undefined;
  if (config.graphPollSeconds) {
    if (config.defender) {
      const [{ createAzureCredential }, { GraphIncidentSource }, { IncidentPoller }] = await Promise.all([
        import('../adapters/azure-credential.js'),
        import('../adapters/graph-incident-source.js'),
        import('./incident-poller.js'),
      ]);
      const source = new GraphIncidentSource({
        credential: createAzureCredential(config.defender),
        graphApiUrl: config.defender.graphUrl,
        logger: runtime.logger,
      });
      poller = new IncidentPoller(runtime, source, config.graphPollSeconds);
    } else {
      runtime.logger.warn(
        'GRAPH_POLL_SECONDS is set but no app registration (DEFENDER_*): not polling Graph',
      );
    }
  }
  return {
    mounts: {
      ...(slack ? { slack: slack.handler } : {}),
      teams: teams.handler,
      ...(config.localMode ? { preview: (await import('./preview/router.js')).previewRouter(runtime) } : {}),
    },
    ...(poller ? { poller } : {}),
  };
}

/** The `/api/messages` handler of a process whose Teams is off: the Teams wiring, built on first use. */
function teamsOnFirstRequest(runtime: Runtime, env: NodeJS.ProcessEnv): RequestHandler {
  let wiring: Promise<TeamsWiring> | undefined;
  return (req, res, next) => {
    wiring ??= import('./teams/index.js').then((teams) => teams.createTeams(runtime, env));
    wiring.then((teams) => teams.handler(req, res, next), next);
  };
}
