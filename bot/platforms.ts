import { createAzureCredential } from '../adapters/azure-credential.js';
import { GraphIncidentSource } from '../adapters/graph-incident-source.js';
import { GRAPH_POLL_JOB, IncidentPoller } from './incident-poller.js';
import { previewRouter } from './preview/router.js';
import type { Runtime } from './runtime.js';
import type { Mounts } from './server.js';
import { createSlack } from './slack/create-slack.js';
import { createTeams } from './teams/index.js';

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
 */
export function createPlatforms(runtime: Runtime, env: NodeJS.ProcessEnv = process.env): Platforms {
  const { config } = runtime;
  const slack = config.slack ? createSlack(runtime) : undefined;
  const teams = createTeams(runtime, env);
  let poller: IncidentPoller | undefined;
  if (config.graphPollSeconds) {
    if (config.defender) {
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
      teams: teams.handler,
      ...(config.localMode ? { preview: previewRouter(runtime) } : {}),
    },
    ...(poller ? { poller } : {}),
  };
}
