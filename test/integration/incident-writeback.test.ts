import { Queue } from 'bullmq';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { BullMqQueue } from '../../adapters/bullmq-queue.js';
import { GraphIncidentWriter } from '../../adapters/graph-incident-writer.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { buildRuntime, describeRuntime } from '../../bot/compose.js';
import { type Config, ConfigError, loadConfig } from '../../bot/config.js';
import { runWriteback, WRITEBACK_PAUSE } from '../../bot/incident-writeback.js';
import { createLogger } from '../../bot/logger.js';
import { JOB_LANES } from '../../bot/runtime.js';
import { markTaskDone } from '../../core/mark-task-done.js';
import type { Policy } from '../../core/policy.js';
import { rejectAction } from '../../core/reject-action.js';
import graphIncident from '../fixtures/graph-incident.json' with { type: 'json' };
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import { GRAPH_ORIGIN, GRAPH_TOKEN, GRAPH_URL, nockLogin, testCredential } from './defender-helpers.js';

const INCIDENT_PATH = '/msgraph/v1.0/security/incidents/48213';
const WAIT = { timeout: 15_000, interval: 25 };
const EXPERT = { id: 'slack:U0EXPERT1', platform: 'slack' as const };
const CUSTOMER = { id: 'slack:U0CUSTOMER', platform: 'slack' as const };

const policy = (overrides: Partial<Policy> = {}): Policy => ({
  roles: { experts: [EXPERT.id], admins: [] },
  exclusions: { devices: [{ group: 'Finance-Servers' }], users: [] },
  channels: {},
  reminders: { pendingTaskHours: 24 },
  notifications: { email: [], assignTo: 'Contoso SOC' },
  ...overrides,
});

interface GraphCall {
  method: 'GET' | 'PATCH';
  at: number;
  authorization: string | undefined;
  body?: any;
}

/**
 * Graph's security incident 48213 (the documented incident shape): GET answers it, PATCH applies the
 * properties sent and answers 200 with the updated incident. `patchAnswers` answer the PATCHes in turn
 * before that (a 429 with its headers, say).
 */
function fakeGraphIncident(
  start: { customTags: string[]; assignedTo: string | null },
  patchAnswers: { status: number; headers?: Record<string, string> }[] = [],
) {
  const incident = { ...structuredClone(graphIncident), alerts: undefined, ...start };
  const calls: GraphCall[] = [];
  let patches = 0;
  nock(GRAPH_ORIGIN)
    .persist()
    .get(INCIDENT_PATH)
    .reply(function () {
      calls.push({ method: 'GET', at: Date.now(), authorization: this.req.headers.authorization as string });
      return [
        200,
        {
          '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#security/incidents/$entity',
          ...incident,
        },
      ];
    })
    .patch(INCIDENT_PATH)
    .reply(function (_uri, body) {
      calls.push({
        method: 'PATCH',
        at: Date.now(),
        authorization: this.req.headers.authorization as string,
        body,
      });
      const answer = patchAnswers[patches++];
      if (answer && answer.status !== 200) {
        const code = answer.status === 429 ? 'TooManyRequests' : 'Forbidden';
        return [answer.status, { error: { code, message: 'refused' } }, answer.headers ?? {}];
      }
      Object.assign(incident, body as object);
      return [200, incident];
    });
  return { calls, incident, patches: () => calls.filter((c) => c.method === 'PATCH') };
}

let redis: TestRedis;
beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
});
afterAll(async () => {
  await redis.cleanup();
});

const bots: BotServer[] = [];
const queues: Queue[] = [];
beforeEach(() => {
  nock.cleanAll();
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
  nockLogin();
});
afterEach(async () => {
  for (const bot of bots.splice(0)) await bot.close();
  for (const queue of queues.splice(0)) await queue.close();
  nock.cleanAll();
  nock.enableNetConnect();
});

const uniquePrefix = () => `${redis.prefix}${Math.random().toString(36).slice(2, 10)}:`;

const writer = () => new GraphIncidentWriter({ credential: testCredential(), graphApiUrl: GRAPH_URL });

/** A bot process on its own Redis prefix, with BullMQ, the production lanes and the Graph writer. */
async function bot(prefix: string, options: { writeback?: boolean; p?: Policy } = {}): Promise<BotServer> {
  const logger = createLogger('silent');
  const server = await startBot({
    config: (config: Config) => ({
      ...config,
      policy: options.p ?? policy(),
      incidentWriteback: options.writeback ?? true,
    }),
    parts: {
      store: new RedisStore({ url: redis.url }, prefix),
      storeKind: 'redis',
      queue: new BullMqQueue({ url: redis.url, keyPrefix: prefix, lanes: JOB_LANES, logger, backoffMs: 100 }),
      incidentWriter: writer(),
    },
  });
  bots.push(server);
  return server;
}

/** The notify lane's BullMQ queue of a prefix, to see it drained. */
function notifyLane(prefix: string): Queue {
  const queue = new Queue('notify', { connection: { url: redis.url }, prefix: `${prefix}{bull}` });
  queues.push(queue);
  return queue;
}

async function drained(queue: Queue): Promise<void> {
  await vi.waitFor(async () => {
    const counts = await queue.getJobCounts(
      'waiting',
      'delayed',
      'active',
      'prioritized',
      'waiting-children',
    );
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(0);
  }, WAIT);
}

const writebackAudit = async (server: BotServer) =>
  (await server.runtime.store.listAudit('48213')).filter((e) => e.event === 'writeback');

async function ingest(server: BotServer): Promise<void> {
  const r = await send(`${server.url}/api/incidents`, {
    token: INGEST_TOKEN,
    body: sampleIngestBody(shippedSample()),
  });
  expect(r.status).toBeLessThan(300);
}

describe('Defender incident write-back', () => {
  it('replaces the MDR: tag keeping the other tags, and assigns the policy queue while tasks are open', async () => {
    const graph = fakeGraphIncident({
      customTags: ['Finance', 'MDR: Resolved', 'Escalated'],
      assignedTo: null,
    });
    const server = await bot(uniquePrefix());
    await ingest(server);

    await vi.waitFor(async () => {
      expect((await writebackAudit(server)).filter((e) => e.outcome === 'ok')).toHaveLength(1);
    }, WAIT);
    const [patch] = graph.patches();
    expect(patch?.authorization).toBe(`Bearer ${GRAPH_TOKEN}`);
    // The sample's Finance-Servers device is a customer task and expert actions are still proposed.
    expect(patch?.body).toEqual({
      customTags: ['Finance', 'Escalated', 'MDR: In progress'],
      assignedTo: 'Contoso SOC',
    });
    expect(graph.calls[0]?.method).toBe('GET');
    expect(graph.incident.customTags).toEqual(['Finance', 'Escalated', 'MDR: In progress']);
  });

  it('gathers a burst of five changes into one PATCH with the last status', async () => {
    const graph = fakeGraphIncident({ customTags: ['Finance'], assignedTo: null });
    const prefix = uniquePrefix();
    const server = await bot(prefix);
    // Change 1: the incident arrives; changes 2-5: the experts reject the four proposed actions, which
    // leaves only the customer's task open.
    await ingest(server);
    for (const actionId of ['act-1', 'act-3', 'act-4', 'act-6']) {
      const decision = await rejectAction(server.runtime.deps, { incidentId: '48213', actionId }, EXPERT);
      expect(decision.ok).toBe(true);
    }

    await vi.waitFor(async () => {
      expect((await writebackAudit(server)).filter((e) => e.outcome === 'ok')).toHaveLength(1);
    }, WAIT);
    await drained(notifyLane(prefix));
    expect(graph.patches()).toHaveLength(1);
    expect(graph.patches()[0]?.body).toEqual({
      customTags: ['Finance', 'MDR: Awaiting customer action'],
      assignedTo: 'Contoso SOC',
    });

    // The customer's task done: resolved, and the owner is left as it is.
    const pending = server.runtime.deps;
    const done = await markTaskDone(pending, { incidentId: '48213', actionId: 'act-5' }, CUSTOMER);
    expect(done.ok).toBe(true);
    await vi.waitFor(async () => {
      expect((await writebackAudit(server)).filter((e) => e.outcome === 'ok')).toHaveLength(2);
    }, WAIT);
    expect(graph.patches()[1]?.body).toEqual({ customTags: ['Finance', 'MDR: Resolved'] });
    expect(graph.incident.assignedTo).toBe('Contoso SOC');
  });

  it('sends no PATCH when Graph already shows the tag and the owner', async () => {
    const graph = fakeGraphIncident({
      customTags: ['MDR: In progress', 'Finance'],
      assignedTo: 'Contoso SOC',
    });
    const prefix = uniquePrefix();
    const server = await bot(prefix, { writeback: false });
    await ingest(server);
    const { store, queue, clock } = server.runtime;
    const outcome = await runWriteback(
      { incidentId: '48213' },
      { store, queue, clock, writer: writer(), logger: createLogger('silent'), assignTo: 'Contoso SOC' },
    );
    expect(outcome).toEqual({ status: 'inStep' });
    expect(graph.calls.map((c) => c.method)).toEqual(['GET']);
  });

  it('waits the Retry-After of a 429 and then brings the incident in step', async () => {
    const graph = fakeGraphIncident({ customTags: ['Finance'], assignedTo: null }, [
      { status: 429, headers: { 'Retry-After': '1' } },
    ]);
    const prefix = uniquePrefix();
    const server = await bot(prefix);
    const paused = vi.spyOn(server.runtime.store, 'pauseChannel');
    await ingest(server);

    await vi.waitFor(async () => {
      expect((await writebackAudit(server)).filter((e) => e.outcome === 'ok')).toHaveLength(1);
    }, WAIT);
    const patches = graph.patches();
    expect(patches).toHaveLength(2);
    // The 429 paused the write-back (for every replica, through the store) until Retry-After ended.
    expect(paused.mock.calls.map(([channel]) => channel)).toEqual([WRITEBACK_PAUSE]);
    expect(paused.mock.calls[0]?.[1]).toBeGreaterThanOrEqual((patches[0]?.at ?? 0) + 1_000);
    expect(patches[1]?.body).toEqual({
      customTags: ['Finance', 'MDR: In progress'],
      assignedTo: 'Contoso SOC',
    });
    expect((await writebackAudit(server)).filter((e) => e.outcome === 'failed')).toEqual([]);
  });

  it('audits a refusal on the incident, naming the permission, without holding anything up', async () => {
    const graph = fakeGraphIncident({ customTags: [], assignedTo: null }, [{ status: 403 }]);
    const server = await bot(uniquePrefix());
    await ingest(server);
    await vi.waitFor(async () => {
      expect((await writebackAudit(server)).filter((e) => e.outcome === 'failed')).toHaveLength(1);
    }, WAIT);
    const [failed] = await writebackAudit(server);
    expect(failed?.detail).toContain('SecurityIncident.ReadWrite.All');
    expect(graph.patches()).toHaveLength(1);
    // The incident itself is untouched by the failure.
    const state = await server.runtime.store.getIncident('48213');
    expect(state?.actions.find((a) => a.id === 'act-5')?.state).toBe('customerPending');
  });

  it('writes nothing back when INCIDENT_WRITEBACK is unset', async () => {
    const graph = fakeGraphIncident({ customTags: [], assignedTo: null });
    const prefix = uniquePrefix();
    const server = await bot(prefix, { writeback: false });
    // The ingest answer comes after the change was handed on: no write-back job was queued for it.
    await ingest(server);
    const counts = await notifyLane(prefix).getJobCounts(
      'waiting',
      'delayed',
      'active',
      'completed',
      'failed',
    );
    expect(Object.values(counts).every((n) => n === 0)).toBe(true);
    expect(graph.calls).toEqual([]);
    expect(describeRuntime(server.runtime)).toContain(
      'incident write-back: off (set INCIDENT_WRITEBACK=true)',
    );
  });
});

describe('INCIDENT_WRITEBACK setting', () => {
  it('is off unless set to true', () => {
    expect(loadConfig({ LOG_LEVEL: 'silent' }).incidentWriteback).toBe(false);
    expect(loadConfig({ LOG_LEVEL: 'silent', INCIDENT_WRITEBACK: 'true' }).incidentWriteback).toBe(true);
  });

  it('refuses to start without the app registration outside local mode', () => {
    const attempt = () =>
      loadConfig({ LOG_LEVEL: 'silent', INCIDENT_WRITEBACK: 'true', REDIS_URL: 'redis://127.0.0.1:6379/0' });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(
      /INCIDENT_WRITEBACK: needs the app registration .*SecurityIncident\.ReadWrite\.All/,
    );
  });

  it('builds the Graph writer with the app registration and says so at start', async () => {
    const config = loadConfig({
      LOG_LEVEL: 'silent',
      INCIDENT_WRITEBACK: 'true',
      DEFENDER_TENANT_ID: '7f3c2a10-5b1e-4c8d-9a6f-2e4b8d1c0a55',
      DEFENDER_CLIENT_ID: '3c9f0e21-7a4b-4d8e-b5c6-1f2a3b4c5d6e',
      DEFENDER_CLIENT_SECRET: 'test-secret-value',
      DRY_RUN: 'true',
    });
    const runtime = buildRuntime({ ...config, policy: policy() }, createLogger('silent'));
    expect(describeRuntime(runtime)).toContainEqual(
      expect.stringMatching(/^incident write-back: on, MDR: tags and assignedTo "Contoso SOC"/),
    );
    await runtime.close();
  });
});
