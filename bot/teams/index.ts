import type { RequestHandler } from 'express';
import type { CardPublisher } from '../delivery.js';
import type { Runtime } from '../runtime.js';
import { createTeamsAdapter, type TeamsEnv, teamsRequestHandler } from './adapter.js';
import { MdrTeamsBot } from './bot.js';
import { TeamsPublisher } from './publisher.js';

export { isLoopbackAddress } from '../loopback.js';
export type { TeamsEnv } from './adapter.js';

/** What the Teams wiring gives the server: the `/api/messages` handler and the card publisher. */
export interface TeamsWiring {
  handler: RequestHandler;
  publisher: CardPublisher;
}

const blank = (v: string | undefined) => (v?.trim() ? v.trim() : undefined);

/**
 * Wire Teams (Bot Framework) to the runtime: `env` is handed to Bot Framework unchanged. The publisher
 * is added to `runtime.publishers`, so incident changes reach Teams.
 */
export function createTeams(runtime: Runtime, env: TeamsEnv = process.env): TeamsWiring {
  const appId = blank(env.MicrosoftAppId) ?? '';
  const adapter = createTeamsAdapter(env);
  const bot = new MdrTeamsBot(runtime, blank(env.MicrosoftAppTenantId));
  const publisher = new TeamsPublisher({
    adapter,
    appId,
    store: runtime.store,
    config: runtime.config,
    clock: runtime.clock,
    logger: runtime.logger,
  });
  runtime.publishers.push(publisher);
  if (appId) runtime.logger.info({ appId }, 'Teams: /api/messages checks Bot Framework tokens');
  else {
    runtime.logger.warn(
      'Teams: MicrosoftAppId is not set, so Bot Framework checks no token: /api/messages serves loopback callers only (Agents Playground, Emulator) and answers 401 to any other address',
    );
  }
  const handler = teamsRequestHandler(adapter, (ctx) => bot.run(ctx), {
    authEnabled: Boolean(appId),
    logger: runtime.logger,
  });
  return { handler, publisher };
}
