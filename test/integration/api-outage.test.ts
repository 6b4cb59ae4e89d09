import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullMqQueue } from '../../adapters/bullmq-queue.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { createLogger } from '../../bot/logger.js';
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { PrivateRedisServer } from '../support/redis.js';

let redis: PrivateRedisServer;
let bot: BotServer;

beforeAll(async () => {
  redis = await PrivateRedisServer.start();
  bot = await startBot({
    parts: {
      store: new RedisStore({ url: redis.url }, 'outage:'),
      storeKind: 'redis',
      queue: new BullMqQueue({ url: redis.url, keyPrefix: 'outage:', logger: createLogger('silent') }),
    },
  });
});

afterAll(async () => {
  await bot?.close();
  await redis?.stop();
});

describe('the bot while Redis is down', () => {
  it('refuses ingest with 503 (nothing accepted), is not ready, and recovers without a restart', async () => {
    expect((await send(`${bot.url}/readyz`)).status).toBe(200);
    await redis.stop();

    const ingest = await send(`${bot.url}/api/incidents`, {
      token: INGEST_TOKEN,
      body: sampleIngestBody(shippedSample()),
    });
    expect(ingest.status).toBe(503);
    expect(ingest.body.error.code).toBe('store_unavailable');
    expect(ingest.headers.get('retry-after')).toBe('5');
    const ready = await send(`${bot.url}/readyz`);
    expect(ready.status).toBe(503);
    expect((await send(`${bot.url}/api/tasks`, { token: INGEST_TOKEN })).status).toBe(503);
    expect((await send(`${bot.url}/healthz`)).status).toBe(200);

    await redis.start();
    await expect
      .poll(async () => (await send(`${bot.url}/readyz`)).status, { timeout: 10_000, interval: 200 })
      .toBe(200);
    // The store answers again; the queue's own connection may take a moment longer, and until then an
    // ingest is still refused with 503, which the sender retries (as here).
    let again: Awaited<ReturnType<typeof send>> | undefined;
    await expect
      .poll(
        async () => {
          again = await send(`${bot.url}/api/incidents`, {
            token: INGEST_TOKEN,
            body: sampleIngestBody(shippedSample()),
          });
          return again.status === 503 ? again.body.error.code : again.status;
        },
        { timeout: 10_000, interval: 200 },
      )
      .toBe(201);
    expect(again?.body.id).toBe('48213');
  });
});
