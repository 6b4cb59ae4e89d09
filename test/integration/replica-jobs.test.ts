import { readFileSync } from 'node:fs';
import { Queue } from 'bullmq';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { BullMqQueue } from '../../adapters/bullmq-queue.js';
import { GraphIncidentSource } from '../../adapters/graph-incident-source.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { GRAPH_POLL_JOB, IncidentPoller } from '../../bot/incident-poller.js';
import { createLogger } from '../../bot/logger.js';
import { MAINTENANCE_JOB, Maintenance } from '../../bot/maintenance.js';
import { JOB_LANES } from '../../bot/runtime.js';
import { createTeams } from '../../bot/teams/index.js';
import { teamsConversationPause } from '../../bot/teams/publisher.js';
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import { botAddedToTeam, CHANNEL_ID, TEAMS_SERVICE_URL } from '../support/teams.js';
import { GRAPH_ORIGIN, GRAPH_URL, nockLogin, testCredential } from './defender-helpers.js';

/** A second team channel the bot was added to. */
const OTHER_CHANNEL = '19:0a1b2c3d4e5f60718293a4b5c6d7e8f9@thread.tacv2';
const WAIT = { timeout: 10_000, interval: 25 };

let redis: TestRedis;
beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
});
afterAll(async () => {
  await redis.cleanup();
});

const bots: BotServer[] = [];
beforeEach(() => {
  nock.cleanAll();
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
});
afterEach(async () => {
  for (const bot of bots.splice(0)) await bot.close();
  nock.cleanAll();
  nock.enableNetConnect();
});

/** A bot process on the shared Redis prefix: Redis store, BullMQ with the production lanes, Teams on. */
async function replica(prefix: string, teams = true): Promise<BotServer> {
  const logger = createLogger('silent');
  const bot = await startBot({
    parts: {
      store: new RedisStore({ url: redis.url }, prefix),
      storeKind: 'redis',
      queue: new BullMqQueue({ url: redis.url, keyPrefix: prefix, lanes: JOB_LANES, logger, backoffMs: 100 }),
    },
    ...(teams ? { mounts: (rt) => ({ teams: createTeams(rt, {}).handler }) } : {}),
  });
  bots.push(bot);
  return bot;
}

const uniquePrefix = () => `${redis.prefix}${Math.random().toString(36).slice(2, 10)}:`;

function incidentBody(id: string) {
  return sampleIngestBody({
    ...shippedSample(),
    incident: { id, incidentWebUrl: `https://security.microsoft.com/incidents/${id}` },
  });
}

interface Call {
  conversation: string;
  incident: string;
  status: number;
  /** The call came while the store still held the conversation's pause (a replica ignored it). */
  duringPause: boolean;
}

describe('card delivery across replicas', () => {
  it("pauses a Teams conversation that answered 429 on every replica while the other conversation's cards go out", async () => {
    const calls: Call[] = [];
    let throttled = false;
    const prefix = uniquePrefix();
    // The store both replicas share, read by "Teams" to tell whether a call came inside the pause.
    const shared = new RedisStore({ url: redis.url }, prefix);
    nock(new URL(TEAMS_SERVICE_URL).origin)
      .persist()
      .post(/\/amer\/v3\/conversations\//)
      .reply(async (path, body: any) => {
        const conversation = decodeURIComponent(path.split('/')[4] ?? '');
        const text = JSON.stringify(body);
        const incident = ['48213', '48299'].find((id) => text.includes(`incidents/${id}`)) ?? '';
        const pausedUntil = await shared.channelPausedUntil(teamsConversationPause(conversation));
        const first = conversation === CHANNEL_ID && !throttled;
        throttled ||= first;
        const status = first ? 429 : 200;
        calls.push({ conversation, incident, status, duringPause: Date.now() < pausedUntil });
        return first
          ? [429, { error: { code: 'Throttled', message: 'slow down' } }, { 'Retry-After': '3' }]
          : [200, { id: `card-${calls.length}` }];
      });
    const one = await replica(prefix);
    for (const id of [CHANNEL_ID, OTHER_CHANNEL]) {
      const added = botAddedToTeam({
        conversation: { id },
        channelData: { settings: { selectedChannel: { id } } },
      });
      expect((await send(`${one.url}/api/messages`, { body: added })).status).toBe(200);
    }
    expect((await one.runtime.store.listConversations()).map((c) => c.conversationId).sort()).toEqual(
      [CHANNEL_ID, OTHER_CHANNEL].sort(),
    );

    expect(
      (await send(`${one.url}/api/incidents`, { token: INGEST_TOKEN, body: incidentBody('48213') })).status,
    ).toBe(201);
    const posted = (conversation: string, incident: string) =>
      calls.filter((c) => c.conversation === conversation && c.incident === incident && c.status === 200);
    await vi.waitFor(() => {
      expect(calls.some((c) => c.status === 429)).toBe(true);
      expect(posted(OTHER_CHANNEL, '48213')).toHaveLength(1);
    }, WAIT);

    // The replica that was answered 429 stops; the other one never saw it and must honour the pause.
    const two = await replica(prefix);
    await bots.shift()?.close();
    expect(
      (await send(`${two.url}/api/incidents`, { token: INGEST_TOKEN, body: incidentBody('48299') })).status,
    ).toBe(201);
    await vi.waitFor(() => expect(posted(OTHER_CHANNEL, '48299')).toHaveLength(1), WAIT);

    await vi.waitFor(() => {
      expect(posted(CHANNEL_ID, '48213')).toHaveLength(1);
      expect(posted(CHANNEL_ID, '48299')).toHaveLength(1);
    }, WAIT);
    const paused = calls.filter((c) => c.conversation === CHANNEL_ID);
    expect(paused.map((c) => c.status)).toEqual([429, 200, 200]);
    // Neither replica called the paused conversation again before the pause (Retry-After) ended.
    expect(paused.map((c) => c.duringPause)).toEqual([false, false, false]);
    expect(calls.filter((c) => c.conversation === OTHER_CHANNEL)).toHaveLength(2);
    await shared.close();
    expect((await two.runtime.store.getCardRefs('48299')).teams?.map((r) => r.conversationId).sort()).toEqual(
      [CHANNEL_ID, OTHER_CHANNEL].sort(),
    );
  });
});

describe('periodic jobs across replicas', () => {
  const page = () =>
    JSON.parse(readFileSync(new URL('../fixtures/graph/incidents-page-2.json', import.meta.url), 'utf8'));

  it('runs the Graph poll and the upkeep once per interval across two replicas', async () => {
    nockLogin();
    nock(GRAPH_ORIGIN).persist().get('/msgraph/v1.0/security/incidents').query(true).reply(200, page());
    const prefix = uniquePrefix();
    const everyMs = 400;
    const polls: number[] = [];
    const upkeep: number[] = [];
    for (let i = 0; i < 2; i++) {
      const bot = await replica(prefix, false);
      const source = new GraphIncidentSource({
        credential: testCredential(),
        graphApiUrl: GRAPH_URL,
        sleep: async () => {},
      });
      const poller = new IncidentPoller(bot.runtime, source, 60);
      const maintenance = new Maintenance(bot.runtime);
      bot.runtime.every(GRAPH_POLL_JOB, everyMs, async () => {
        polls.push(Date.now());
        await poller.pollOnce();
      });
      bot.runtime.every(MAINTENANCE_JOB, everyMs, async () => {
        upkeep.push(Date.now());
        await maintenance.runOnce();
      });
      await bot.runtime.startTimers();
    }
    await vi.waitFor(() => {
      expect(polls.length).toBeGreaterThanOrEqual(5);
      expect(upkeep.length).toBeGreaterThanOrEqual(5);
    }, WAIT);
    // One schedule per periodic job in Redis, shared by both replicas (a timer per replica would leave
    // none there and run each job twice per interval); BullMQ runs each iteration of a schedule once.
    const lane = new Queue('maintenance', { connection: redis.client(), prefix: `${prefix}{bull}` });
    const schedulers = await lane.getJobSchedulers();
    await lane.close();
    expect(
      schedulers
        .map((s) => ({ name: s.name, every: Number(s.every) }))
        .sort((a, b) => a.name.localeCompare(b.name)),
    ).toEqual([
      { name: GRAPH_POLL_JOB, every: everyMs },
      { name: MAINTENANCE_JOB, every: everyMs },
    ]);
    expect((await bots[0]!.runtime.store.getIncident('48214'))?.incident.title).toBe(
      'Password spray against the VPN',
    );
  });

  it('finishes a running poll before the process stops', async () => {
    nockLogin();
    let arrived: () => void = () => {};
    const pollStarted = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    // Graph holds its answer until the stop has begun, so the stop meets a poll under way.
    let answer: () => void = () => {};
    const answered = new Promise<void>((resolve) => {
      answer = resolve;
    });
    nock(GRAPH_ORIGIN)
      .persist()
      .get('/msgraph/v1.0/security/incidents')
      .query(true)
      .reply(async () => {
        arrived();
        await answered;
        return [200, page()];
      });
    const prefix = uniquePrefix();
    const bot = await replica(prefix, false);
    const source = new GraphIncidentSource({ credential: testCredential(), graphApiUrl: GRAPH_URL });
    const poller = new IncidentPoller(bot.runtime, source, 60);
    bot.runtime.every(GRAPH_POLL_JOB, 60_000, () => poller.pollOnce());
    await bot.runtime.startTimers();
    await pollStarted;

    const stopping = bots.splice(0)[0]!.close();
    answer();
    await stopping;

    const store = new RedisStore({ url: redis.url }, prefix);
    try {
      expect((await store.getIncident('48214'))?.incident.id).toBe('48214');
    } finally {
      await store.close();
    }
  });
});
