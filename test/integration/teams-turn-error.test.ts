import { randomUUID } from 'node:crypto';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { RedisStore } from '../../adapters/redis-store.js';
import { createTeams } from '../../bot/teams/index.js';
import { StoreUnavailableError } from '../../core/errors.js';
import { type BotServer, send, startBot } from '../support/bot-server.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import {
  botAddedToTeam,
  CHANNEL_ID,
  cardAction,
  EXPERT_USER,
  mentionMessage,
  TEAMS_SERVICE_URL,
} from '../support/teams.js';

/** A Redis store that fails as an unreachable Redis does, or with a fault of its own, once told to. */
class BreakingStore extends RedisStore {
  failure: Error | null = null;
  override async listConversations() {
    if (this.failure) throw this.failure;
    return super.listConversations();
  }
  override async loadForDecision(incidentId: string, actionId: string) {
    if (this.failure) throw this.failure;
    return super.loadForDecision(incidentId, actionId);
  }
}

let redis: TestRedis;
beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
});
afterAll(async () => {
  await redis.cleanup();
});

describe('Teams: a failure while handling an activity', () => {
  let bot: BotServer;
  let store: BreakingStore;
  let replies: { path: string; body: any }[];

  beforeEach(async () => {
    nock.cleanAll();
    nock.disableNetConnect();
    nock.enableNetConnect(/127\.0\.0\.1|localhost/);
    replies = [];
    nock(new URL(TEAMS_SERVICE_URL).origin)
      .persist()
      .post(/\/amer\/v3\/conversations\//)
      .reply((path, body) => {
        replies.push({ path, body });
        return [200, { id: `reply-${replies.length}` }];
      });
    store = new BreakingStore({ url: redis.url }, `${redis.prefix}${randomUUID().slice(0, 8)}:`);
    bot = await startBot({
      parts: { store, storeKind: 'redis' },
      config: (c) => ({
        ...c,
        policy: { ...c.policy, roles: { experts: [`teams:${EXPERT_USER.aadObjectId}`], admins: [] } },
      }),
      mounts: (rt) => ({ teams: createTeams(rt, {}).handler }),
    });
    expect((await send(`${bot.url}/api/messages`, { body: botAddedToTeam() })).status).toBe(200);
  });
  afterEach(async () => {
    await bot.close();
    nock.cleanAll();
    nock.enableNetConnect();
  });

  it('answers a command with what to do when the store is unreachable, in a reply in the conversation', async () => {
    store.failure = new StoreUnavailableError('Redis is not reachable (test)');

    const sent = await send(`${bot.url}/api/messages`, { body: mentionMessage('pending') });

    expect(sent.status).toBe(200);
    await vi.waitFor(() => expect(replies).toHaveLength(1), { timeout: 5_000, interval: 20 });
    expect(replies[0]!.path).toContain(encodeURIComponent(CHANNEL_ID));
    expect(replies[0]!.body).toMatchObject({
      type: 'message',
      textFormat: 'plain',
      text: 'The bot cannot reach its store right now: nothing was recorded. Try again in a minute.',
    });
  });

  it('answers a card click with an error the clicker sees, saying what to do, and sends nothing else', async () => {
    store.failure = new Error('an unexpected fault');

    const clicked = await send(`${bot.url}/api/messages`, {
      body: cardAction('approve', { incidentId: '48213', actionId: 'act-1' }),
    });

    expect(clicked.status).toBe(500);
    expect(clicked.body).toEqual({
      statusCode: 500,
      type: 'application/vnd.microsoft.error',
      value: {
        code: 'internal',
        message:
          'Something went wrong in the bot: nothing was recorded. Try again; if it persists, tell the bot operator.',
      },
    });
    expect(replies).toEqual([]);
  });

  it('tells the clicker to try again in a minute when the store is unreachable (503)', async () => {
    store.failure = new StoreUnavailableError('Redis is not reachable (test)');

    const clicked = await send(`${bot.url}/api/messages`, {
      body: cardAction('approve', { incidentId: '48213', actionId: 'act-1' }),
    });

    expect(clicked.status).toBe(503);
    expect(clicked.body.value).toEqual({
      code: 'store_unavailable',
      message: 'The bot cannot reach its store right now: nothing was recorded. Try again in a minute.',
    });
  });
});
