import type { RequestHandler } from 'express';
import { MdrError } from '../core/errors.js';
import { sendError } from './http-errors.js';
import { GRAPH_POLL_JOB, type IncidentPoller } from './incident-poller.js';
import type { Logger } from './logger.js';
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
 * and an app registration are set (a job every GRAPH_POLL_SECONDS, once per interval across replicas).
 * Call before `runtime.queue.start()`: each platform registers its card publisher and the poll job.
 *
 * Each platform's code (Bolt, Bot Framework, the preview's renderers, the Graph client) is loaded only
 * when the configuration turns it on: unused SDKs would hold tens of megabytes for the life of the
 * process. With Teams off, `/api/messages` answers 401 without Bot Framework.
 */
export async function createPlatforms(
  runtime: Runtime,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Platforms> {
  const { config } = runtime;
  const slack = config.slack ? (await import('./slack/create-slack.js')).createSlack(runtime) : undefined;
  const teamsOff = !config.teams.authEnabled && !config.localMode;
  const teams = teamsOff ? { handler: teamsOffHandler(runtime.logger) } : teamsOnFirstUse(runtime, env);
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
      const graphPoller = new IncidentPoller(runtime, source, config.graphPollSeconds);
      runtime.every(GRAPH_POLL_JOB, config.graphPollSeconds * 1_000, () => graphPoller.pollOnce());
      poller = graphPoller;
    } else {
      runtime.logger.warn(
        'GRAPH_POLL_SECONDS is set but no app registration (DEFENDER_*): not polling Graph',
      );
    }
  }
  return {
    mounts: {
      ...(slack ? { slack: slack.handler } : {}),
      ...(slack?.readiness ? { readiness: [slack.readiness] } : {}),
      teams: teams.handler,
      ...(config.localMode ? { preview: (await import('./preview/router.js')).previewRouter(runtime) } : {}),
    },
    ...(poller ? { poller } : {}),
  };
}

/**
 * Teams on, with Bot Framework (about 50 MB of modules) loaded on first use: the first activity on
 * `/api/messages` or the first card to deliver to Teams, not at start. The app id is checked at once.
 */
function teamsOnFirstUse(runtime: Runtime, env: NodeJS.ProcessEnv): { handler: RequestHandler } {
  const appId = runtime.config.teams.appId ?? '';
  if ((env.MicrosoftAppId?.trim() ?? '') !== appId)
    throw new MdrError(
      'config_invalid',
      'createTeams: the environment names another MicrosoftAppId than the configuration',
    );
  let wiring: Promise<TeamsWiring> | undefined;
  const load = () => {
    wiring ??= import('./teams/index.js').then((m) => m.createTeams(runtime, env, { register: false }));
    return wiring;
  };
  const publisher = async () => {
    const loaded = (await load()).publisher;
    if (!loaded) throw new MdrError('internal', 'Teams is on but its wiring made no card publisher');
    return loaded;
  };
  runtime.publishers.push({
    platform: 'teams',
    deliver: async (state, context) => (await publisher()).deliver(state, context),
    remind: async (task, state) => (await publisher()).remind(task, state),
    pauseNames: async (refs) => (await publisher()).pauseNames?.(refs) ?? [],
  });
  return {
    handler: (req, res, next) => {
      load().then((w) => w.handler(req, res, next), next);
    },
  };
}

/**
 * How to turn Teams on, for the log and the 401 outside local mode: the words of the Teams wiring
 * (`TEAMS_OFF` of bot/teams/adapter.ts, kept equal by a test), repeated here so that a process with
 * Teams off never loads Bot Framework.
 */
export const TEAMS_OFF_MESSAGE =
  'Teams is off: set MicrosoftAppId, MicrosoftAppPassword and MicrosoftAppTenantId (the bot registration) to turn it on';

/** `/api/messages` while Teams is off: 401 to everyone, as the Teams wiring answers it. */
function teamsOffHandler(logger: Logger): RequestHandler {
  logger.warn(`Teams: ${TEAMS_OFF_MESSAGE}. /api/messages answers 401 until then.`);
  return (req, res) => {
    logger.warn({ remoteAddress: req.socket.remoteAddress }, `Teams request refused: ${TEAMS_OFF_MESSAGE}`);
    sendError(res, 401, 'unauthorized', TEAMS_OFF_MESSAGE);
  };
}
