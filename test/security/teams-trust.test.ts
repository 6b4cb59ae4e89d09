import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { RedisStore } from '../../adapters/redis-store.js';
import { ConfigError, loadConfig } from '../../bot/config.js';
import { createTeams } from '../../bot/teams/index.js';
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import {
  BOT,
  botAddedToTeam,
  CHANNEL_ID,
  CUSTOMER_USER,
  channelToken,
  EXPERT_USER,
  fakeBotFramework,
  installationUpdate,
  mentionMessage,
  TEAM,
  TEAMS_AUTH_ENV,
  TEAMS_SERVICE_URL,
  TENANT_ID,
} from '../support/teams.js';

const OTHER_TENANT = '0badc0de-0000-4000-8000-00000000dead';
const WAIT = { timeout: 10_000, interval: 50 };

let redis: TestRedis;
beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
});
afterAll(async () => {
  await redis.cleanup();
});

/** The Bot Connector at TEAMS_SERVICE_URL, faked: records what the bot sends. */
function fakeConnector() {
  const posts: { path: string; body: any }[] = [];
  nock(new URL(TEAMS_SERVICE_URL).origin)
    .persist()
    .post(/\/v3\/conversations\//)
    .reply((path, body) => {
      posts.push({ path, body });
      return [200, { id: `sent-${posts.length}` }];
    })
    .put(/\/v3\/conversations\//)
    .reply((_path, body) => [200, { id: (body as { id: string }).id }]);
  return posts;
}

let bot: BotServer;
let store: RedisStore;
let posts: { path: string; body: any }[];

beforeEach(() => {
  nock.cleanAll();
  fakeBotFramework();
  posts = fakeConnector();
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
});
afterEach(async () => {
  await bot?.close();
  nock.cleanAll();
  nock.enableNetConnect();
});

/** The bot with `env` (loadConfig and Bot Framework both see it), a Redis store and an admin in the policy. */
async function start(env: Record<string, string>) {
  store = new RedisStore({ url: redis.url }, `${redis.prefix}${randomUUID().slice(0, 8)}:`);
  bot = await startBot({
    env,
    parts: { store, storeKind: 'redis' },
    config: (c) => ({
      ...c,
      policy: {
        ...c.policy,
        roles: { experts: [`teams:${EXPERT_USER.aadObjectId}`], admins: [] },
        exclusions: { devices: [{ group: 'Finance-Servers' }], users: [] },
      },
    }),
    mounts: (rt) => ({ teams: createTeams(rt, env).handler }),
  });
}

const post = (body: unknown, token?: string) =>
  send(`${bot.url}/api/messages`, { body, ...(token ? { token } : {}) });
const signed = (body: Record<string, any>) =>
  post(body, channelToken({ serviceurl: body.serviceUrl ?? TEAMS_SERVICE_URL }));
const replies = () => posts.filter((p) => p.path.includes('/activities/'));
const lastReplyText = () => String(replies().at(-1)?.body.text ?? '');

describe('Teams without MicrosoftAppId outside local mode', () => {
  it('answers 401 to a loopback caller, stores nothing and runs no command', async () => {
    await start({ REDIS_URL: redis.url });
    expect(bot.runtime.config.localMode).toBe(false);

    const added = await post(botAddedToTeam());
    const unexclude = await post(mentionMessage('unexclude device-group Finance-Servers'));

    expect([added.status, unexclude.status]).toEqual([401, 401]);
    expect(added.body.error.message).toContain('MicrosoftAppTenantId');
    expect(await store.listConversations()).toEqual([]);
    expect(await store.listAudit()).toEqual([]);
    expect(bot.runtime.publishers.some((p) => p.platform === 'teams')).toBe(false);
    expect(posts).toEqual([]);
  });
});

describe('MicrosoftAppTenantId', () => {
  it('is required with MicrosoftAppId, and the message says where to find it', () => {
    const { MicrosoftAppTenantId: _, ...withoutTenant } = TEAMS_AUTH_ENV;
    let problems: string[] = [];
    try {
      loadConfig(withoutTenant);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      problems = (error as ConfigError).problems;
    }
    expect(problems.join('\n')).toMatch(
      /^MicrosoftAppTenantId: is required when MicrosoftAppId is set.*Tenant ID/m,
    );
  });
});

describe('Teams with MicrosoftAppId: tenant, channel and serviceUrl', () => {
  it('refuses and audits an authenticated activity from another tenant, and stores nothing', async () => {
    await start(TEAMS_AUTH_ENV);
    const foreign = botAddedToTeam({
      conversation: { tenantId: OTHER_TENANT },
      channelData: { tenant: { id: OTHER_TENANT } },
    });
    const res = await signed(foreign);
    expect(res.status).toBe(403);
    expect(await store.listConversations()).toEqual([]);
    expect(await store.listAudit()).toMatchObject([
      {
        event: 'teams-activity',
        outcome: 'refused',
        platform: 'teams',
        actor: expect.stringContaining(OTHER_TENANT),
        detail: expect.stringContaining('another tenant'),
      },
    ]);
  });

  it('refuses and audits an authenticated activity whose channel is not msteams (emulator included)', async () => {
    await start(TEAMS_AUTH_ENV);
    const results = [
      await signed(botAddedToTeam({ channelId: 'webchat' })),
      await signed(botAddedToTeam({ channelId: 'emulator' })),
    ];
    expect(results.map((r) => r.status)).toEqual([403, 403]);
    expect(await store.listConversations()).toEqual([]);
    const audit = await store.listAudit();
    expect(audit.map((a) => [a.outcome, a.detail])).toEqual([
      ['refused', expect.stringContaining('"webchat" is not msteams')],
      ['refused', expect.stringContaining('"emulator" is not msteams')],
    ]);
  });

  it('refuses a serviceUrl that is not a Bot Framework host unless TEAMS_SERVICE_URL_HOSTS names it', async () => {
    await start(TEAMS_AUTH_ENV);
    const evil = await signed(botAddedToTeam({ serviceUrl: 'https://collector.evil.example/' }));
    const plain = await signed(botAddedToTeam({ serviceUrl: 'http://smba.trafficmanager.net/amer/' }));
    expect([evil.status, plain.status]).toEqual([403, 403]);
    expect(await store.listConversations()).toEqual([]);
    expect((await store.listAudit()).map((a) => a.detail)).toEqual([
      expect.stringContaining('collector.evil.example is not a Bot Framework / Teams host'),
      expect.stringContaining('is not https'),
    ]);

    const teams = await signed(botAddedToTeam({ serviceUrl: 'https://smba.trafficmanager.net/emea/' }));
    const named = await signed(botAddedToTeam({ conversation: { id: '19:other@thread.tacv2' } }));
    expect([teams.status, named.status]).toEqual([200, 200]);
    expect((await store.listConversations()).map((c) => c.conversationId).sort()).toEqual(
      [CHANNEL_ID, '19:other@thread.tacv2'].sort(),
    );
  });

  it('saves conversation references with their tenant and delivers cards only to the allowed tenant', async () => {
    await start(TEAMS_AUTH_ENV);
    expect((await signed(botAddedToTeam())).status).toBe(200);
    const saved = await store.listConversations();
    expect(saved[0]?.reference).toMatchObject({ conversation: { id: CHANNEL_ID, tenantId: TENANT_ID } });
    // Stored before this version (no tenant) or by another tenant: never delivered to.
    const channel = (id: string, tenantId?: string) => ({
      ...(saved[0]?.reference as object),
      conversation: { id, conversationType: 'channel', isGroup: true, ...(tenantId ? { tenantId } : {}) },
    });
    await store.saveConversation('19:legacy@thread.tacv2', channel('19:legacy@thread.tacv2'));
    await store.saveConversation('19:foreign@thread.tacv2', channel('19:foreign@thread.tacv2', OTHER_TENANT));

    await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body: sampleIngestBody(shippedSample()) });
    await vi.waitFor(
      async () => expect((await store.getCardRefs('48213')).teams?.[0]?.activityId).toBeTruthy(),
      WAIT,
    );
    const cardPaths = posts.map((p) => decodeURIComponent(p.path));
    expect(cardPaths).toHaveLength(1);
    expect(cardPaths[0]).toContain(CHANNEL_ID);
    expect((await store.getCardRefs('48213')).teams?.map((r) => r.conversationId)).toEqual([CHANNEL_ID]);
  });
});

describe('Teams commands answer only where they should', () => {
  const personal = { id: 'a:1personal-chat-with-the-bot', conversationType: 'personal', isGroup: false };
  const inPersonalChat = (text: string, from = EXPERT_USER) =>
    mentionMessage(text, { from, conversation: personal, channelData: { team: null, channel: null } });

  it('answers in any channel of an installed team and in a personal chat where the bot is installed', async () => {
    await start(TEAMS_AUTH_ENV);
    await signed(botAddedToTeam());
    await signed(installationUpdate('add', { conversation: personal, channelData: { team: null } }));

    const otherChannel = '19:incident-room@thread.tacv2';
    await signed(
      mentionMessage('exclusions', {
        conversation: { id: `${otherChannel};messageid=1` },
        channelData: { channel: { id: otherChannel }, team: { id: TEAM.id } },
      }),
    );
    await vi.waitFor(() => expect(lastReplyText()).toContain('device-group Finance-Servers'), WAIT);

    await signed(inPersonalChat('exclusions'));
    await vi.waitFor(() => expect(replies()).toHaveLength(2), WAIT);
    expect(lastReplyText()).toContain('device-group Finance-Servers');
  });

  it("keeps customers' pending in the SOC channel, the exclusion list for experts, and audits each refusal", async () => {
    await start(TEAMS_AUTH_ENV);
    await signed(botAddedToTeam());
    await signed(installationUpdate('add', { conversation: personal, channelData: { team: null } }));

    await signed(inPersonalChat('pending', CUSTOMER_USER));
    await vi.waitFor(() => expect(replies()).toHaveLength(1), WAIT);
    expect(lastReplyText()).toContain('pending is answered in the SOC channel');

    await signed(mentionMessage('exclusions', { from: CUSTOMER_USER }));
    await vi.waitFor(() => expect(replies()).toHaveLength(2), WAIT);
    expect(lastReplyText()).toContain('only the MDR experts and the admins');
    expect(lastReplyText()).not.toContain('Finance-Servers');

    expect((await store.listAudit()).map((a) => [a.event, a.outcome, a.actor])).toEqual([
      ['command:pending', 'refused', `teams:${CUSTOMER_USER.aadObjectId}`],
      ['command:exclusions', 'refused', `teams:${CUSTOMER_USER.aadObjectId}`],
    ]);
  });

  it('answers a command sent where the bot is not installed only with where to send it, audited', async () => {
    await start(TEAMS_AUTH_ENV);
    const chat = { id: '19:meeting_unknown@thread.v2', conversationType: 'groupChat', isGroup: true };
    await signed(
      mentionMessage('exclusions', { conversation: chat, channelData: { team: null, channel: null } }),
    );
    await vi.waitFor(() => expect(replies()).toHaveLength(1), WAIT);
    expect(lastReplyText()).toContain('personal chat with the bot');
    expect(lastReplyText()).not.toContain('Finance-Servers');
    expect(await store.listAudit()).toMatchObject([
      { event: 'command:exclusions', outcome: 'refused', detail: expect.stringContaining('wrong_place') },
    ]);
  });
});

describe('Teams in local mode', () => {
  /** POST with headers fetch will not send (Host) and without its own. */
  const raw = (path: string, body: unknown, headers: Record<string, string>) =>
    new Promise<{ status: number; body: any }>((resolve, reject) => {
      const url = new URL(path, bot.url);
      const text = JSON.stringify(body);
      const req = request(
        url,
        { method: 'POST', headers: { 'content-type': 'application/json', ...headers } },
        (res) => {
          let data = '';
          res.on('data', (d) => (data += d));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: data ? JSON.parse(data) : undefined }),
          );
        },
      );
      req.on('error', reject);
      req.end(text);
    });

  it('refuses requests through a proxy or tunnel, or for another Host, and audits them', async () => {
    await start({});
    expect(bot.runtime.config.localMode).toBe(true);
    const port = new URL(bot.url).port;
    const refused: Record<string, string>[] = [
      { 'x-forwarded-for': '203.0.113.7' },
      { 'X-Forwarded-Host': 'mdr.example' },
      { forwarded: 'for=203.0.113.7;proto=https' },
      { 'x-real-ip': '203.0.113.7' },
      { host: 'abc123.ngrok-free.app' },
      { host: `rebind.evil.example:${port}` },
    ];
    for (const headers of refused) {
      const res = await raw('/api/messages', botAddedToTeam(), headers);
      expect(res.status, JSON.stringify(headers)).toBe(401);
    }
    expect(await store.listConversations()).toEqual([]);
    expect(await store.listAudit()).toHaveLength(refused.length);

    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) {
      expect((await raw('/api/messages', botAddedToTeam(), { host })).status, host).toBe(200);
    }
    expect((await store.listConversations()).map((c) => c.conversationId)).toEqual([CHANNEL_ID]);
  });

  it('serves the Emulator channel in local mode', async () => {
    await start({});
    const res = await post(botAddedToTeam({ channelId: 'emulator', recipient: BOT }));
    expect(res.status).toBe(200);
  });
});
