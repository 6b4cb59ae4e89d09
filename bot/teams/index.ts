import type { RequestHandler } from 'express';
import { recordRefusal } from '../../core/decisions.js';
import { MdrError } from '../../core/errors.js';
import type { CardPublisher } from '../delivery.js';
import { TEAMS_OFF_MESSAGE as TEAMS_OFF } from '../platforms.js';
import type { Runtime } from '../runtime.js';
import type { TeamsEnv } from './adapter.js';
import { connectorToken } from './connector-api.js';
import { TeamsPublisher } from './publisher.js';
import { teamsTrustOf } from './trust.js';

export { isLoopbackAddress } from '../loopback.js';
export type { TeamsEnv } from './adapter.js';

/** What the Teams wiring gives the server: the `/api/messages` handler and, when Teams is on, the card publisher. */
export interface TeamsWiring {
  handler: RequestHandler;
  publisher?: CardPublisher;
}

const blank = (v: string | undefined) => (v?.trim() ? v.trim() : undefined);

/**
 * Wire Teams (Bot Framework) to the runtime. What is trusted comes from `runtime.config`; `env` is handed
 * to Bot Framework unchanged and must name the same app id. Teams is on with an app id, or in local mode
 * for this machine only; otherwise `/api/messages` answers 401 and no card is delivered. When on, the
 * publisher is added to `runtime.publishers`, so incident changes reach Teams. `options.callTimeoutMs`
 * bounds each Bot Connector call (default PLATFORM_CALL_TIMEOUT_MS); `options.register: false` leaves adding the
 * publisher to the caller.
 *
 * The publisher talks to the Bot Connector over plain HTTP (connector-api.ts): Bot Framework (about 50 MB
 * of modules) is loaded by the first activity on `/api/messages`, never by a card delivery.
 */
export function createTeams(
  runtime: Runtime,
  env: TeamsEnv = process.env,
  options: { callTimeoutMs?: number; register?: boolean } = {},
): TeamsWiring {
  const { config, logger } = runtime;
  const appId = config.teams.appId ?? '';
  if ((blank(env.MicrosoftAppId) ?? '') !== appId)
    throw new MdrError(
      'config_invalid',
      'createTeams: the environment names another MicrosoftAppId than the configuration',
    );
  const trust = teamsTrustOf(config);
  // Bot Framework's own login settings, read now: an unsupported one stops the wiring at once.
  const token = connectorToken(env);
  const audit = (who: string, detail: string) =>
    recordRefusal(
      runtime.deps,
      { id: `teams-unverified:${who}`.slice(0, 300), platform: 'teams' },
      'teams-activity',
      `not_allowed: ${detail}`,
    );
  let loaded: Promise<RequestHandler> | undefined;
  const load = () => {
    loaded ??= Promise.all([import('./adapter.js'), import('./bot.js')]).then(
      ([{ createTeamsAdapter, teamsRequestHandler, turnErrorHandler }, { MdrTeamsBot }]) => {
        const adapter = createTeamsAdapter(env);
        adapter.onTurnError = turnErrorHandler(logger);
        const bot = new MdrTeamsBot(runtime, trust);
        return teamsRequestHandler(adapter, (ctx) => bot.run(ctx), { trust, logger, audit });
      },
    );
    return loaded;
  };
  const handler: RequestHandler = (req, res, next) => {
    load().then((loadedHandler) => loadedHandler(req, res, next), next);
  };
  if (!trust.authEnabled && !trust.localMode) {
    logger.warn(`Teams: ${TEAMS_OFF}. /api/messages answers 401 until then.`);
    return { handler };
  }
  const publisher = new TeamsPublisher({
    token,
    store: runtime.store,
    config,
    clock: runtime.clock,
    logger,
    ...(options.callTimeoutMs !== undefined ? { callTimeoutMs: options.callTimeoutMs } : {}),
  });
  if (options.register !== false) runtime.publishers.push(publisher);
  if (trust.authEnabled) {
    logger.info(
      { appId, tenantId: trust.tenantId, extraServiceUrlHosts: trust.serviceUrlHosts },
      'Teams: /api/messages checks Bot Framework tokens and serves only the tenant MicrosoftAppTenantId',
    );
  } else {
    logger.warn(
      'Teams: local mode, without MicrosoftAppId: /api/messages serves this machine only (Agents Playground, Emulator), not through a proxy or tunnel',
    );
  }
  return { handler, publisher };
}
