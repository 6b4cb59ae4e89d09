import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { BullMqQueue } from '../../adapters/bullmq-queue.js';
import { GraphMailer, PreviewOutbox } from '../../adapters/graph-mailer.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { buildRuntime } from '../../bot/compose.js';
import { type Config, loadConfig } from '../../bot/config.js';
import { createLogger } from '../../bot/logger.js';
import { previewRouter } from '../../bot/preview/router.js';
import { EMAIL_JOB, JOB_LANES, jobIdOf } from '../../bot/runtime.js';
import { createSlack } from '../../bot/slack/create-slack.js';
import { batchEvent, requestBatchEmail } from '../../core/email-customer-tasks.js';
import { handOverAction } from '../../core/hand-over-action.js';
import type { Policy } from '../../core/policy.js';
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import {
  fakeAuthTest,
  readWebApiCall,
  SLACK_API_ORIGIN,
  SLACK_API_URL,
  SLACK_BOT_TOKEN,
  SLACK_SIGNING_SECRET,
  type WebApiCall,
} from '../support/slack.js';
import {
  fakeTime,
  GRAPH_ORIGIN,
  GRAPH_TOKEN,
  GRAPH_URL,
  nockLogin,
  testCredential,
} from './defender-helpers.js';

const SENDER = 'mdr-notifications@contoso.com';
const SOC = ['soc@contoso.com', 'it-oncall@contoso.com'];
const SEND_PATH = `/msgraph/v1.0/users/${encodeURIComponent(SENDER)}/sendMail`;
const WAIT = { timeout: 10_000, interval: 25 };

const policy = (overrides: Partial<Policy> = {}): Policy => ({
  roles: { experts: ['slack:U0EXPERT1'], admins: [] },
  exclusions: { devices: [{ group: 'Finance-Servers' }], users: [] },
  channels: { slack: 'C0SOC' },
  reminders: { pendingTaskHours: 24 },
  notifications: { email: SOC },
  ...overrides,
});
const withPolicy = (p: Policy) => (config: Config) => ({ ...config, policy: p });

interface SentMail {
  authorization: string | undefined;
  body: any;
}

/** Graph's sendMail: answers each call with the next status of `statuses` (the last one repeats). */
function fakeSendMail(statuses: { status: number; headers?: Record<string, string> }[] = [{ status: 202 }]) {
  const calls: SentMail[] = [];
  nock(GRAPH_ORIGIN)
    .persist()
    .post(SEND_PATH)
    .reply(function (_uri, body) {
      calls.push({ authorization: this.req.headers.authorization as string | undefined, body });
      const next = statuses[Math.min(calls.length - 1, statuses.length - 1)] ?? { status: 202 };
      if (next.status === 202) return [202, ''];
      return [
        next.status,
        {
          error: {
            code: next.status === 429 ? 'ApplicationThrottled' : 'ServiceUnavailable',
            message: 'try later',
          },
        },
        next.headers ?? {},
      ];
    });
  return calls;
}

function mailer(time = fakeTime()) {
  return new GraphMailer({
    credential: testCredential(),
    graphApiUrl: GRAPH_URL,
    sender: SENDER,
    sleep: time.sleep,
    retryBaseMs: 10,
  });
}

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
  nockLogin();
});
afterEach(async () => {
  for (const bot of bots.splice(0)) await bot.close();
  nock.cleanAll();
  nock.enableNetConnect();
});

const uniquePrefix = () => `${redis.prefix}${Math.random().toString(36).slice(2, 10)}:`;

/** A bot process on a Redis prefix, with BullMQ and the production lanes. */
async function replica(prefix: string, p: Policy, extra: { slack?: boolean } = {}): Promise<BotServer> {
  const logger = createLogger('silent');
  const bot = await startBot({
    ...(extra.slack ? { env: { SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL } } : {}),
    config: withPolicy(p),
    parts: {
      store: new RedisStore({ url: redis.url }, prefix),
      storeKind: 'redis',
      queue: new BullMqQueue({ url: redis.url, keyPrefix: prefix, lanes: JOB_LANES, logger, backoffMs: 100 }),
      mailer: mailer(),
    },
    ...(extra.slack ? { mounts: (rt) => ({ slack: createSlack(rt).handler }) } : {}),
  });
  bots.push(bot);
  return bot;
}

const emailAudit = async (bot: BotServer, incidentId = '48213') =>
  (await bot.runtime.store.listAudit(incidentId)).filter((e) => e.event === 'email');

describe('GraphMailer', () => {
  it('sends as MAIL_SENDER through POST /v1.0/users/{sender}/sendMail in the documented shape', async () => {
    const calls = fakeSendMail();
    const result = await mailer().send({ to: SOC, subject: 'Subject', text: 'Body' });
    expect(result).toEqual({ ok: true });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.authorization).toBe(`Bearer ${GRAPH_TOKEN}`);
    expect(calls[0]?.body).toEqual({
      message: {
        subject: 'Subject',
        body: { contentType: 'Text', content: 'Body' },
        toRecipients: SOC.map((address) => ({ emailAddress: { address } })),
      },
      saveToSentItems: true,
    });
  });

  it('waits the Retry-After of a 429, retries a 503, and succeeds on the next 202', async () => {
    const calls = fakeSendMail([
      { status: 429, headers: { 'Retry-After': '7' } },
      { status: 503 },
      { status: 202 },
    ]);
    const time = fakeTime();
    const result = await mailer(time).send({ to: SOC, subject: 'S', text: 'T' });
    expect(result).toEqual({ ok: true });
    expect(calls).toHaveLength(3);
    expect(time.waits[0]).toBe(7_000);
    expect(time.waits).toHaveLength(2);
  });

  it('names the permission when Graph answers 403', async () => {
    fakeSendMail([{ status: 403 }]);
    const result = await mailer().send({ to: SOC, subject: 'S', text: 'T' });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toContain('Mail.Send');
  });
});

describe('customer task email', () => {
  it('sends one email per event across two replicas on one Redis prefix', async () => {
    const calls = fakeSendMail();
    const prefix = uniquePrefix();
    // Reminders a second apart, so a reminder email follows the first one within the test.
    const p = policy({ reminders: { pendingTaskHours: 1 / 3600 } });
    const [one, two] = [await replica(prefix, p), await replica(prefix, p)];
    const body = sampleIngestBody(shippedSample());
    const results = await Promise.all(
      [one, two].map((bot) => send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body })),
    );
    for (const r of results) expect(r.status).toBeLessThan(300);
    // The other replica asks for the same batch too (as its own ingest of the same body would).
    await requestBatchEmail(two.runtime.deps, '48213', [{ id: 'act-5', version: 1 }]);

    await vi.waitFor(async () => {
      const sent = (await emailAudit(one)).filter((e) => e.outcome === 'ok');
      expect(sent.length).toBeGreaterThanOrEqual(2);
      expect(sent[0]?.detail.split(':')[0]).toBe('tasks-act-5@1');
      expect(sent[1]?.detail).toMatch(/^reminder-/);
    }, WAIT);
    await Promise.all([one, two].map((bot) => bot.close()));
    bots.length = 0;

    const audit = (await new RedisStore({ url: redis.url }, prefix).listAudit('48213')).filter(
      (e) => e.event === 'email' && e.outcome === 'ok',
    );
    const events = audit.map((e) => e.detail.split(':')[0]);
    expect(new Set(events).size).toBe(events.length);
    expect(calls).toHaveLength(audit.length);
    const first = calls[0]?.body.message;
    expect(first.subject).toMatch(
      /^\[High\] Multi-stage incident involving .+: 1 action\(s\) for your team$/,
    );
    const text: string = first.body.content;
    expect(text).toContain('https://security.microsoft.com/incidents/48213');
    expect(text).toContain('Isolate device fin-app-07.corp.contoso.com');
    expect(text).toContain('Task id: 48213:act-5');
    expect(text).toContain('excluded by device group Finance-Servers');
    expect(text).toContain('done <task id>');
    expect(text).toContain('POST /api/tasks/<task id>/done');
    expect(calls[1]?.body.message.subject).toMatch(/^Reminder: \[High\]/);
  });

  it('sends one email per new batch of customer tasks (first ingest, a re-ingest adding excluded actions, a hand-over), each once across two workers', async () => {
    const calls = fakeSendMail();
    const prefix = uniquePrefix();
    const [one, two] = [await replica(prefix, policy()), await replica(prefix, policy())];
    const both = async (body: Record<string, any>) => {
      const results = await Promise.all(
        [one, two].map((bot) => send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body })),
      );
      for (const r of results) expect(r.status).toBeLessThan(300);
    };
    const sentEvents = async () =>
      (await emailAudit(one)).filter((e) => e.outcome === 'ok').map((e) => e.detail.split(':')[0]);
    const drained = async (events: string[]) => {
      for (const event of events) {
        const job = { kind: 'email', incidentId: '48213', event } as const;
        for (const bot of [one, two])
          expect(await bot.runtime.queue.has(EMAIL_JOB, jobIdOf(job))).toBe(false);
      }
    };

    const body = sampleIngestBody(shippedSample());
    await both(body);
    await vi.waitFor(async () => expect(await sentEvents()).toEqual(['tasks-act-5@1']), WAIT);

    // An update of the incident adds two actions on the excluded server: one batch of two new tasks.
    const server = {
      deviceId: '9e0d3b7c1a5f2e48d6c9b0a3f7e1d2c5b8a4f6e9',
      deviceName: 'fin-app-07.corp.contoso.com',
    };
    body.managedResponse.actions.push(
      { id: 'act-7', type: 'restrictAppExecution', status: 'proposed', target: server },
      { id: 'act-8', type: 'runAntivirusScan', status: 'proposed', target: server },
    );
    await both(body);
    await requestBatchEmail(two.runtime.deps, '48213', [
      { id: 'act-8', version: 1 },
      { id: 'act-7', version: 1 },
    ]);
    await vi.waitFor(
      async () => expect(await sentEvents()).toEqual(['tasks-act-5@1', 'tasks-act-7@1+act-8@1']),
      WAIT,
    );

    // The experts' isolation of the workstation failed; both workers hand it over at once: one wins.
    const store = one.runtime.store;
    const isolation = await store.getAction('48213', 'act-1');
    if (!isolation) throw new Error('act-1 missing');
    const failed = {
      ...isolation,
      state: 'failed' as const,
      error: 'Defender: Failed (the device is offline)',
    };
    const seeded = await store.compareAndSet(
      { ...failed, version: isolation.version + 1 },
      isolation.version,
      {
        at: new Date().toISOString(),
        incidentId: '48213',
        actionId: 'act-1',
        actor: 'system',
        platform: 'system',
        event: 'execute',
        outcome: 'failed',
        detail: 'failed',
      },
    );
    expect(seeded.ok).toBe(true);
    const expert = { id: 'slack:U0EXPERT1', platform: 'slack' } as const;
    const ref = { incidentId: '48213', actionId: 'act-1' };
    const handovers = await Promise.all(
      [one, two].map((bot) => handOverAction(bot.runtime.deps, ref, expert)),
    );
    const won = handovers.find((h) => h.ok);
    expect(handovers.filter((h) => h.ok)).toHaveLength(1);
    const handedOver = `tasks-act-1@${won?.ok ? won.action.version : -1}`;

    const all = ['tasks-act-5@1', 'tasks-act-7@1+act-8@1', handedOver];
    await vi.waitFor(async () => {
      expect(await sentEvents()).toEqual(all);
      await drained(all);
    }, WAIT);
    expect(calls).toHaveLength(3);
    const texts = calls.map((c) => c.body.message.body.content as string);
    expect(texts[0]).toContain('Task id: 48213:act-5');
    expect(texts[1]).toContain('Incident 48213 has 2 new actions for your team to carry out.');
    expect(texts[1]).toContain('Task id: 48213:act-7');
    expect(texts[1]).toContain('Task id: 48213:act-8');
    expect(texts[1]).not.toContain('48213:act-5');
    expect(calls[1]?.body.message.subject).toMatch(/: 2 action\(s\) for your team$/);
    expect(texts[2]).toContain('Task id: 48213:act-1');
    expect(texts[2]).toContain('the device is offline');
    expect(texts[2]).not.toContain('48213:act-7');
    expect(calls.every((c) => !String(c.body.message.subject).startsWith('Reminder'))).toBe(true);
  });

  it('audits a final failure on the incident and still delivers the card', async () => {
    fakeAuthTest();
    const posts: WebApiCall[] = [];
    nock(SLACK_API_ORIGIN)
      .persist()
      .post('/api/chat.postMessage')
      .reply(function (_uri, body) {
        posts.push(readWebApiCall(this.req.headers, body));
        return [200, { ok: true, channel: 'C0SOC', ts: `1741942000.00000${posts.length}` }];
      })
      .post('/api/chat.update')
      .reply(200, { ok: true, channel: 'C0SOC', ts: '1741942000.000001' });
    const calls = fakeSendMail([{ status: 503 }]);
    const bot = await replica(uniquePrefix(), policy(), { slack: true });

    const res = await send(`${bot.url}/api/incidents`, {
      token: INGEST_TOKEN,
      body: sampleIngestBody(shippedSample()),
    });
    expect(res.status).toBe(201);
    await vi.waitFor(async () => {
      expect(posts).toHaveLength(1);
      expect((await emailAudit(bot)).map((e) => e.outcome)).toEqual(['failed']);
    }, WAIT);
    const [failure] = await emailAudit(bot);
    expect(failure?.detail).toMatch(
      /^tasks-act-5@1: not sent: Microsoft Graph answered 503 to POST sendMail after 4 attempts/,
    );
    expect(calls).toHaveLength(4);
    expect((await bot.runtime.store.getCardRefs('48213')).slack).toBeDefined();
  });

  it('sends nothing when the policy names no address', async () => {
    const calls = fakeSendMail();
    const bot = await replica(uniquePrefix(), policy({ notifications: { email: [] } }));
    const res = await send(`${bot.url}/api/incidents`, {
      token: INGEST_TOKEN,
      body: sampleIngestBody(shippedSample()),
    });
    expect(res.status).toBe(201);
    // The task exists and its reminder is queued, which is where the email job would have been asked for.
    expect((await bot.runtime.store.listTasks('pending')).map((t) => t.id)).toEqual(['48213:act-5']);
    const job = {
      kind: 'email',
      incidentId: '48213',
      event: batchEvent([{ id: 'act-5', version: 1 }]),
    } as const;
    expect(await bot.runtime.queue.has(EMAIL_JOB, jobIdOf(job))).toBe(false);
    expect(await emailAudit(bot)).toEqual([]);
    expect(calls).toEqual([]);
  });
});

describe('local mode', () => {
  it('keeps the email for the preview page instead of sending it', async () => {
    const config = loadConfig({ LOG_LEVEL: 'silent' });
    const built = buildRuntime(config, createLogger('silent'));
    expect(built.deps.mailer).toBeInstanceOf(PreviewOutbox);
    await built.close();
    const bot = await startBot({
      parts: { mailer: new PreviewOutbox('mdr-bot@localhost') },
      mounts: (runtime) => ({ preview: previewRouter(runtime) }),
    });
    bots.push(bot);
    expect(config.localMode && bot.runtime.config.localMode).toBe(true);

    const res = await send(`${bot.url}/api/incidents`, {
      token: INGEST_TOKEN,
      body: sampleIngestBody(shippedSample()),
    });
    expect(res.status).toBe(201);
    await vi.waitFor(async () => {
      const state = await send(`${bot.url}/preview/api/state`);
      expect(state.status).toBe(200);
      expect(state.body.emails).toHaveLength(1);
    }, WAIT);
    const { body } = await send(`${bot.url}/preview/api/state`);
    expect(body.emails[0]).toMatchObject({ from: 'mdr-bot@localhost', to: ['soc@contoso.com'] });
    expect(body.emails[0].subject).toContain('[High]');
    expect(body.emails[0].text).toContain('Task id: 48213:');
  });
});
