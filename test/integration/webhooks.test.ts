import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { BullMqQueue } from '../../adapters/bullmq-queue.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { loadConfig } from '../../bot/config.js';
import { createLogger } from '../../bot/logger.js';
import { assembleRuntime, JOB_LANES } from '../../bot/runtime.js';
import {
  eventIdOf,
  WEBHOOK_JOB,
  WEBHOOK_RELAY_CURSOR,
  WEBHOOK_RETRY_SPAN_MS,
  WebhookEvents,
  type WebhookJob,
  WebhookRelay,
  webhookJobId,
} from '../../bot/webhooks.js';
import { approveAction } from '../../core/approve-action.js';
import { handOverAction } from '../../core/hand-over-action.js';
import { ingestIncident } from '../../core/ingest-incident.js';
import { markTaskDone } from '../../core/mark-task-done.js';
import type { Clock, ResponseExecutor } from '../../core/ports.js';
import { skipTask } from '../../core/skip-task.js';
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { CUSTOMER, EXPERT, ManualClock } from '../support/core-harness.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import { freePort } from '../support/redis-server.js';

const ORIGIN = 'https://itsm.example.test';
const HOOK_PATH = '/hooks/mdr';
const SECRET = 'whsec-0123456789abcdef-test';
const WAIT = { timeout: 15_000, interval: 25 };
const FIN_APP_07 = '9e0d3b7c1a5f2e48d6c9b0a3f7e1d2c5b8a4f6e9';

let redis: TestRedis;
let dir: string;
const bots: BotServer[] = [];
const queues: Queue[] = [];

beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
  dir = mkdtempSync(join(tmpdir(), 'mdr-webhooks-'));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await redis.cleanup();
});
beforeEach(() => {
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
});
afterEach(async () => {
  for (const bot of bots.splice(0)) await bot.close();
  for (const queue of queues.splice(0)) await queue.close();
  nock.cleanAll();
  nock.enableNetConnect();
});

/** An executor whose every action ends failed, as Defender reports a device it cannot reach. */
const failingExecutor: ResponseExecutor = {
  dryRun: false,
  async submit() {
    return { kind: 'finished', outcome: { ok: false, reason: 'device is offline' } };
  },
  async check(actions) {
    return actions.map(() => ({ kind: 'unknown' as const, reason: 'not followed' }));
  },
};

/** A bot on real Redis (store and BullMQ) whose policy names one webhook, subscribed to `events`. */
async function startHookedBot(
  events: string[] = ALL_EVENTS,
  options: { prefix?: string; clock?: Clock } = {},
) {
  const prefix = options.prefix ?? newPrefix();
  const policyFile = hookedPolicy(prefix, events);
  const logger = createLogger('silent');
  const bot = await startBot({
    env: { POLICY_FILE: policyFile, ITSM_WEBHOOK_SECRET: SECRET },
    parts: {
      store: new RedisStore({ url: redis.url }, prefix),
      storeKind: 'redis',
      queue: new BullMqQueue({ url: redis.url, keyPrefix: prefix, lanes: JOB_LANES, logger, backoffMs: 30 }),
      executor: failingExecutor,
      ...(options.clock ? { clock: options.clock } : {}),
    },
  });
  bots.push(bot);
  const lane = new Queue('notify', { connection: { url: redis.url }, prefix: `${prefix}{bull}` });
  queues.push(lane);
  return { bot, lane, prefix };
}

const ALL_EVENTS = ['task.created', 'task.done', 'task.skipped', 'action.failed', 'incident.resolved'];

function newPrefix(): string {
  return `${redis.prefix}${Math.random().toString(16).slice(2, 8)}:`;
}

/** A policy file naming one webhook subscribed to `events`. */
function hookedPolicy(prefix: string, events: string[]): string {
  const policyFile = join(dir, `policy-${prefix.replace(/\W/g, '')}.yaml`);
  writeFileSync(
    policyFile,
    [
      'roles:',
      `  experts: [${EXPERT.id}]`,
      'exclusions:',
      '  devices:',
      '    - group: Finance-Servers',
      'notifications:',
      '  webhooks:',
      `    - url: ${ORIGIN}${HOOK_PATH}`,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the policy's own ${NAME} syntax
      '      secret: ${ITSM_WEBHOOK_SECRET}',
      `      events: [${events.join(', ')}]`,
    ].join('\n'),
  );
  return policyFile;
}

async function drained(queue: Queue): Promise<void> {
  await vi.waitFor(async () => {
    const counts = await queue.getJobCounts('waiting', 'delayed', 'active', 'prioritized');
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(0);
  }, WAIT);
}

interface Received {
  signature: string;
  contentType: string;
  raw: string;
  event: any;
}

/** The receiver: answers each try of an event with the next status of `statuses` (the last one repeats). */
function fakeReceiver(statuses: number[] = [200]) {
  const received: Received[] = [];
  nock(ORIGIN)
    .persist()
    .post(HOOK_PATH)
    .reply(function (_uri, body) {
      const raw = typeof body === 'string' ? body : JSON.stringify(body);
      received.push({
        signature: String(this.req.headers['x-mdr-signature']),
        contentType: String(this.req.headers['content-type']),
        raw,
        event: JSON.parse(raw),
      });
      const tries = received.filter((r) => r.event.id === received.at(-1)?.event.id).length;
      const status = statuses[Math.min(tries - 1, statuses.length - 1)] ?? 200;
      return [status, ''];
    });
  return received;
}

/** What a receiver does: recompute the HMAC over `t.body` and compare in constant time. */
function verify(secret: string, header: string, raw: string): boolean {
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=') as [string, string]));
  if (!parts.t || !parts.v1) return false;
  const expected = createHmac('sha256', secret).update(`${parts.t}.${raw}`).digest();
  const given = Buffer.from(parts.v1, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** The sample incident cut to three actions: one for the experts, one done, two on an excluded server. */
function ingestBody() {
  const sample = shippedSample();
  return sampleIngestBody({
    ...sample,
    actions: [
      ...sample.actions.filter((a) => ['act-1', 'act-2', 'act-5'].includes(a.id)),
      {
        id: 'act-8',
        type: 'restrictAppExecution',
        status: 'proposed',
        target: { deviceId: FIN_APP_07, deviceName: 'fin-app-07.corp.contoso.com' },
      },
    ],
  });
}

async function ingest(bot: BotServer) {
  const r = await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body: ingestBody() });
  expect(r.status).toBe(201);
}

const ref = (actionId: string) => ({ incidentId: '48213', actionId });

describe('webhooks', () => {
  it('sends each fact once, signed, with the task or action as the REST API shows it', async () => {
    const received = fakeReceiver();
    const { bot, lane } = await startHookedBot();
    const deps = bot.runtime.deps;

    await ingest(bot);
    const done = await send(`${bot.url}/api/tasks/48213:act-5/done`, {
      token: INGEST_TOKEN,
      body: { by: 'Dana' },
    });
    expect(done.status).toBe(200);
    expect((await skipTask(deps, ref('act-8'), CUSTOMER, 'server is being retired')).ok).toBe(true);
    expect((await approveAction(deps, ref('act-1'), EXPERT)).ok).toBe(true);
    await vi.waitFor(
      async () => expect((await deps.store.getAction('48213', 'act-1'))?.state).toBe('failed'),
      WAIT,
    );
    expect((await handOverAction(deps, ref('act-1'), EXPERT)).ok).toBe(true);
    const last = await send(`${bot.url}/api/tasks/48213:act-1/done`, {
      token: INGEST_TOKEN,
      body: { by: 'Dana' },
    });
    expect(last.status).toBe(200);
    await vi.waitFor(() => expect(received.length).toBeGreaterThanOrEqual(8), WAIT);
    await drained(lane);

    const facts = received.map(
      (r) => `${r.event.type} ${r.event.task?.actionId ?? r.event.action?.id ?? '-'}`,
    );
    expect(facts.sort()).toEqual(
      [
        'action.failed act-1',
        'incident.resolved -',
        'task.created act-1',
        'task.created act-5',
        'task.created act-8',
        'task.done act-1',
        'task.done act-5',
        'task.skipped act-8',
      ].sort(),
    );
    expect(new Set(received.map((r) => r.event.id)).size).toBe(8);
    for (const r of received) {
      expect(r.contentType).toBe('application/json');
      expect(r.signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
      expect(verify(SECRET, r.signature, r.raw)).toBe(true);
      expect(verify('another-secret-0123456789', r.signature, r.raw)).toBe(false);
      expect(r.event.incident).toEqual({
        id: '48213',
        title: expect.any(String),
        severity: 'high',
        managedStatus: expect.any(String),
        portalUrl: expect.stringMatching(/^https:\/\/security\.microsoft\.com\//),
      });
    }
    const byFact = (type: string, id?: string) =>
      received.find(
        (r) =>
          r.event.type === type &&
          (id === undefined || (r.event.task?.actionId ?? r.event.action?.id) === id),
      )?.event;
    // Exactly what GET /api/tasks?status=skipped and GET /api/incidents/{id} return for them.
    const skipped = await send(`${bot.url}/api/tasks?status=skipped`, { token: INGEST_TOKEN });
    expect(byFact('task.skipped')?.task).toEqual(skipped.body.tasks[0]);
    expect(byFact('task.skipped')?.task.reason).toBe('server is being retired');
    const failed = byFact('action.failed', 'act-1')?.action;
    expect(failed).toMatchObject({
      id: 'act-1',
      type: 'isolateDevice',
      state: 'failed',
      error: expect.stringContaining('offline'),
    });
    expect(byFact('task.done', 'act-1')?.task).toEqual(last.body.task);
    expect(byFact('incident.resolved')?.incident.managedStatus).toBe('resolved');
    expect(byFact('task.created', 'act-5')?.task).toMatchObject({
      id: '48213:act-5',
      state: 'pending',
      excludedBy: expect.stringContaining('Finance-Servers'),
    });

    // Sending the same incident again adds nothing, so no fact and no event.
    const again = await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body: ingestBody() });
    expect(again.status).toBe(200);
    await drained(lane);
    expect(received).toHaveLength(8);
  });

  it('retries after 500s with the same event id and a fresh valid signature, then stops at the 2xx', async () => {
    const received = fakeReceiver([500, 503, 200]);
    const { bot, lane } = await startHookedBot(['task.created']);

    await ingest(bot);
    await vi.waitFor(() => expect(received.length).toBeGreaterThanOrEqual(6), WAIT);
    await drained(lane);

    // Two tasks were created (act-5, act-8); each event met a 500 and a 503 before the 200.
    const ids = [...new Set(received.map((r) => r.event.id))];
    expect(ids).toHaveLength(2);
    for (const id of ids) {
      const tries = received.filter((r) => r.event.id === id);
      expect(tries).toHaveLength(3);
      expect(new Set(tries.map((r) => r.raw)).size).toBe(1);
    }
    expect(received).toHaveLength(6);
    for (const r of received) expect(verify(SECRET, r.signature, r.raw)).toBe(true);
    const metrics = await bot.runtime.metrics.registry.getSingleMetricAsString(
      'mdr_webhook_deliveries_total',
    );
    expect(metrics).toMatch(/outcome="delivered"} 2/);
    expect(metrics).toMatch(/outcome="retried"} 4/);
  });

  it('gives up on a 4xx other than 408 and 429, and audits it', async () => {
    const received = fakeReceiver([410, 200]);
    const { bot, lane } = await startHookedBot(['incident.resolved', 'task.done']);

    await ingest(bot);
    await send(`${bot.url}/api/tasks/48213:act-5/done`, { token: INGEST_TOKEN, body: { by: 'Dana' } });
    await vi.waitFor(async () => {
      const audit = await bot.runtime.store.listAudit('48213');
      expect(audit.filter((e) => e.event === 'webhook')).toEqual([
        expect.objectContaining({
          outcome: 'failed',
          detail: expect.stringMatching(
            /^task\.done evt_\w+ to https:\/\/itsm\.example\.test\/hooks\/mdr: HTTP 410$/,
          ),
        }),
      ]);
    }, WAIT);
    await drained(lane);
    expect(received).toHaveLength(1);
  });

  it('never calls an address the policy in force does not name, and audits the refusal', async () => {
    const elsewhere = nock('https://old-itsm.example.test').post('/hooks/mdr').query(true).reply(200);
    fakeReceiver();
    const { bot, lane } = await startHookedBot();
    await ingest(bot);
    await drained(lane);
    const job: WebhookJob = {
      eventId: 'evt_0123456789abcdef0123456789abcdef',
      type: 'task.created',
      url: 'https://old-itsm.example.test/hooks/mdr?token=kept-out-of-logs',
      incidentId: '48213',
      body: '{"id":"evt_0123456789abcdef0123456789abcdef"}',
      queuedAt: Date.now(),
    };

    await bot.runtime.queue.add(WEBHOOK_JOB, job, { id: webhookJobId(job.eventId, job.url) });

    await vi.waitFor(async () => {
      const audit = await bot.runtime.store.listAudit('48213');
      expect(audit.filter((e) => e.event === 'webhook')).toEqual([
        expect.objectContaining({
          outcome: 'refused',
          detail: expect.stringContaining(
            'https://old-itsm.example.test/hooks/mdr is not a webhook of the policy',
          ),
        }),
      ]);
    }, WAIT);
    await drained(lane);
    expect(elsewhere.isDone()).toBe(false);
    const audit = JSON.stringify(await bot.runtime.store.listAudit('48213'));
    expect(audit).not.toContain('kept-out-of-logs');
  });
});

describe('webhook events are durable', () => {
  it('delivers once each the events of writes whose writer could not queue them, when the relay runs', async () => {
    const received = fakeReceiver();
    const prefix = newPrefix();
    const logger = createLogger('silent');
    // The bot that decides: the shared store, but its job queue is down (nothing listens on that port),
    // as for a bot that dies between the write and the queueing.
    const deadQueue = new BullMqQueue({
      url: `redis://127.0.0.1:${await freePort()}`,
      keyPrefix: prefix,
      lanes: JOB_LANES,
      logger,
    });
    const writer = assembleRuntime(
      loadConfig({
        INGEST_TOKEN,
        LOG_LEVEL: 'silent',
        POLICY_FILE: hookedPolicy(prefix, ALL_EVENTS),
        ITSM_WEBHOOK_SECRET: SECRET,
      }),
      logger,
      { store: new RedisStore({ url: redis.url }, prefix), storeKind: 'redis', queue: deadQueue },
    );
    try {
      // Each write lands in the store; what follows it (reminders, cards, the events) cannot be queued.
      await expect(
        ingestIncident(writer.deps, ingestBody(), { id: 'api:ingest', platform: 'api' }),
      ).rejects.toThrow();
      await markTaskDone(writer.deps, ref('act-5'), CUSTOMER).catch(() => undefined);
      await skipTask(writer.deps, ref('act-8'), CUSTOMER, 'server is being retired').catch(() => undefined);
      const stored = await writer.store.getIncident('48213');
      expect(stored?.actions.map((a) => [a.id, a.state, a.version])).toEqual([
        ['act-1', 'proposed', 1],
        ['act-2', 'succeeded', 1],
        ['act-5', 'doneByCustomer', 2],
        ['act-8', 'skippedByCustomer', 2],
      ]);
      const notQueued = await writer.metrics.registry.getSingleMetricAsString('mdr_webhook_events_total');
      expect(notQueued).toMatch(/outcome="not_queued"} 2/);
      expect(received).toHaveLength(0);
    } finally {
      await writer.close();
    }

    // Another replica, with a queue that works: its relay reads the facts from the audit feed.
    const { bot, lane } = await startHookedBot(ALL_EVENTS, { prefix });
    await vi.waitFor(() => expect(received.length).toBeGreaterThanOrEqual(4), WAIT);
    await drained(lane);
    const expected = [
      'task.created|48213|act-5|1',
      'task.created|48213|act-8|1',
      'task.done|48213|act-5|2',
      'task.skipped|48213|act-8|2',
    ];
    expect(received.map((r) => r.event.id).sort()).toEqual(expected.map(eventIdOf).sort());
    for (const r of received) expect(verify(SECRET, r.signature, r.raw)).toBe(true);
    expect(received.find((r) => r.event.type === 'task.skipped')?.event.task).toMatchObject({
      id: '48213:act-8',
      reason: 'server is being retired',
    });

    // This replica's own decision is queued at once; relaying the whole feed again sends nothing twice.
    expect((await approveAction(bot.runtime.deps, ref('act-1'), EXPERT)).ok).toBe(true);
    await vi.waitFor(() => expect(received.map((r) => r.event.type)).toContain('action.failed'), WAIT);
    await bot.runtime.store.setCursor(WEBHOOK_RELAY_CURSOR, '0-0');
    const { store, queue, clock, metrics, config } = bot.runtime;
    const events = new WebhookEvents({ store, queue, clock, logger, metrics, webhooks: config.webhooks });
    const again = await new WebhookRelay({ store, logger, events }).runOnce();
    expect(again.queued).toBe(5);
    await drained(lane);
    expect(received).toHaveLength(5);
    expect(new Set(received.map((r) => r.event.id)).size).toBe(5);
    expect(await store.getCursor(WEBHOOK_RELAY_CURSOR)).not.toBe('0-0');
  });

  it('gives a delivery up 24 h after it was queued, by the clock, and audits it', async () => {
    const received = fakeReceiver([503]);
    const clock = new ManualClock(new Date());
    const { bot, lane } = await startHookedBot(['task.created'], { clock });

    await ingest(bot);
    // Tried again and again while the day is not over, nothing given up.
    await vi.waitFor(() => expect(received.length).toBeGreaterThanOrEqual(6), WAIT);
    const given = async () =>
      (await bot.runtime.store.listAudit('48213')).filter((e) => e.event === 'webhook');
    expect(await given()).toEqual([]);

    clock.advance(WEBHOOK_RETRY_SPAN_MS);
    await vi.waitFor(async () => expect(await given()).toHaveLength(2), WAIT);
    await drained(lane);
    for (const entry of await given()) {
      expect(entry).toMatchObject({
        outcome: 'failed',
        detail: expect.stringMatching(
          /^task\.created evt_\w+ to .+: HTTP 503, given up after 24 h of tries$/,
        ),
      });
    }
    // Each event was tried with one id until then, and not after.
    const tries = received.length;
    const ids = new Set(received.map((r) => r.event.id));
    expect(ids.size).toBe(2);
    await drained(lane);
    expect(received).toHaveLength(tries);
  });
});
