import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LocalQueue } from '../../../adapters/local-queue.js';
import { loadConfig } from '../../../bot/config.js';
import { createLogger } from '../../../bot/logger.js';
import { createPlatforms, TEAMS_OFF_MESSAGE } from '../../../bot/platforms.js';
import { assembleRuntime, type Runtime } from '../../../bot/runtime.js';
import { createHttpApp } from '../../../bot/server.js';
import { TEAMS_OFF } from '../../../bot/teams/adapter.js';
import { send } from '../../support/bot-server.js';

// Slack on (so not local mode), no MicrosoftAppId: Teams is off.
const ENV = {
  SLACK_BOT_TOKEN: 'xoxb-1-2-3',
  SLACK_SIGNING_SECRET: 'abcdef0123456789abcdef',
  SLACK_API_URL: 'http://127.0.0.1:9/api/',
  ALLOW_INSECURE_URLS: 'true',
  LOG_LEVEL: 'silent',
};

let server: Server | undefined;
let runtime: Runtime | undefined;
afterEach(async () => {
  if (server) await new Promise<void>((resolve) => server?.close(() => resolve()));
  server?.closeAllConnections();
  await runtime?.close();
  server = undefined;
  runtime = undefined;
});

describe('createPlatforms', () => {
  it('says what the Teams wiring says while Teams is off', () => {
    expect(TEAMS_OFF_MESSAGE).toBe(TEAMS_OFF);
  });

  it('answers 401 on /api/messages with Teams off, and delivers no card to Teams', async () => {
    const config = loadConfig(ENV);
    const logger = createLogger(config.logLevel);
    const warned = vi.spyOn(logger, 'warn');
    runtime = assembleRuntime(config, logger, { queue: new LocalQueue({ logger }) });
    const platforms = await createPlatforms(runtime, ENV);
    const app = createHttpApp(runtime, platforms.mounts);
    const listening = app.listen(0, '127.0.0.1');
    server = listening;
    await new Promise<void>((resolve) => listening.once('listening', () => resolve()));
    const { port } = listening.address() as AddressInfo;

    const res = await send(`http://127.0.0.1:${port}/api/messages`, {
      body: { type: 'message', channelId: 'msteams', text: 'help' },
    });

    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: { code: 'unauthorized', message: TEAMS_OFF } });
    expect(runtime.publishers.map((p) => p.platform)).toEqual(['slack']);
    expect(warned).toHaveBeenCalledWith(`Teams: ${TEAMS_OFF}. /api/messages answers 401 until then.`);
  });

  it('has the Teams card publisher loaded on first use name the pauses a delivery of a card checks', async () => {
    const env = {
      ...ENV,
      MicrosoftAppId: '00000000-0000-4000-8000-0000000000a1',
      MicrosoftAppPassword: 'not-a-real-password-0123456789',
      MicrosoftAppTenantId: '00000000-0000-4000-8000-0000000000b2',
    };
    const config = loadConfig(env);
    const logger = createLogger(config.logLevel);
    runtime = assembleRuntime(config, logger, { queue: new LocalQueue({ logger }) });
    await createPlatforms(runtime, env);
    const teams = runtime.publishers.find((p) => p.platform === 'teams');

    const names = await teams?.pauseNames?.({
      teams: [{ conversationId: '19:soc@thread.tacv2', activityId: 'a-1' }],
    });

    expect(names).toEqual(['teams:19:soc@thread.tacv2']);
  });
});
