import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { BullMqQueue } from '../../adapters/bullmq-queue.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { createLogger } from '../../bot/logger.js';
import { JOB_LANES } from '../../bot/runtime.js';
import { WEBHOOK_JOB, type WebhookJob, webhookJobId } from '../../bot/webhooks.js';
import { approveAction } from '../../core/approve-action.js';
import { handOverAction } from '../../core/hand-over-action.js';
import type { ResponseExecutor } from '../../core/ports.js';
import { skipTask } from '../../core/skip-task.js';
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { CUSTOMER, EXPERT, sampleIngestBody } from '../support/core-harness.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';

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
  events: string[] = ['task.created', 'task.done', 'task.skipped', 'action.failed', 'incident.resolved'],
) {
  const prefix = `${redis.prefix}${Math.random().toString(16).slice(2, 8)}:`;
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
  const logger = createLogger('silent');
  const bot = await startBot({
    env: { POLICY_FILE: policyFile, ITSM_WEBHOOK_SECRET: SECRET },
    parts: {
      store: new RedisStore({ url: redis.url }, prefix),
      storeKind: 'redis',
      queue: new BullMqQueue({ url: redis.url, keyPrefix: prefix, lanes: JOB_LANES, logger, backoffMs: 30 }),
      executor: failingExecutor,
    },
  });
  bots.push(bot);
  const lane = new Queue('notify', { connection: { url: redis.url }, prefix: `${prefix}{bull}` });
  queues.push(lane);
  return { bot, lane };
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
  const body = sampleIngestBody();
  const actions = body.managedResponse.actions as { id: string }[];
  body.managedResponse.actions = [
    ...actions.filter((a) => ['act-1', 'act-2', 'act-5'].includes(a.id)),
    {
      id: 'act-8',
      type: 'restrictAppExecution',
      status: 'proposed',
      target: { deviceId: FIN_APP_07, deviceName: 'fin-app-07.corp.contoso.com' },
    },
  ];
  return body;
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
