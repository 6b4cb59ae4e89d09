import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import nock from 'nock';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { BullMqQueue } from '../../adapters/bullmq-queue.js';
import { DefenderExecutor } from '../../adapters/defender-executor.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { createLogger } from '../../bot/logger.js';
import { JOB_LANES } from '../../bot/runtime.js';
import { createSlack } from '../../bot/slack/create-slack.js';
import { buttonValue } from '../../cards/slack/render.js';
import { ADMIN_TOKEN, type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { type PolicyFile, writePolicyFile } from '../support/config.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import {
  clickButton,
  recordSlackBodies,
  SLACK_API_URL,
  SLACK_BOT_TOKEN,
  SLACK_SIGNING_SECRET,
} from '../support/slack.js';
import {
  fakeTime,
  fixture,
  GRAPH_URL,
  MDE_ORIGIN,
  MDE_TOKEN,
  MDE_URL,
  nockLogin,
  testCredential,
} from './defender-helpers.js';

const EXPERT = 'U0EXPERT1';
const CHANNEL = 'C0SOC';
const MACHINE = '4a1f9c2e7b3d8e06c5a2f1b9d7e3c8a0b6f2d4e1';
const POLICY = `
roles:
  experts: [slack:${EXPERT}]
  admins: []
exclusions:
  devices: []
  users: []
channels:
  slack: ${CHANNEL}
`;

/** One span as OTLP/HTTP JSON carries it, with its attributes flattened. */
interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Record<string, unknown>;
}

type OtlpValue = {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
};
const flatten = (list: { key: string; value: OtlpValue }[] = []) =>
  Object.fromEntries(
    list.map(({ key, value }) => [
      key,
      value.stringValue ?? value.intValue ?? value.boolValue ?? value.doubleValue ?? value,
    ]),
  );

/** A fake OpenTelemetry collector on loopback: `POST /v1/traces`, OTLP/HTTP with JSON bodies. */
function fakeCollector() {
  const bodies: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      expect(req.headers['content-type']).toBe('application/json');
      bodies.push(body);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  const spans = (): ExportedSpan[] =>
    bodies.flatMap((body) =>
      (JSON.parse(body).resourceSpans ?? []).flatMap((rs: any) =>
        (rs.scopeSpans ?? []).flatMap((ss: any) =>
          (ss.spans ?? []).map((s: any) => ({ ...s, attributes: flatten(s.attributes) })),
        ),
      ),
    );
  const resources = () =>
    bodies.flatMap((body) =>
      (JSON.parse(body).resourceSpans ?? []).map((rs: any) => flatten(rs.resource?.attributes)),
    );
  return { server, bodies, spans, resources };
}

let redis: TestRedis;
let policy: PolicyFile;
let collector: ReturnType<typeof fakeCollector>;
let collectorUrl: string;

beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
  policy = writePolicyFile(POLICY);
  collector = fakeCollector();
  await new Promise<void>((resolve) => collector.server.listen(0, '127.0.0.1', resolve));
  collectorUrl = `http://127.0.0.1:${(collector.server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => collector?.server.close(resolve));
  await redis?.cleanup();
  policy.remove();
  nock.cleanAll();
  nock.enableNetConnect();
});

/** Slack's Web API, recording what the bot posts and updates. */
function fakeSlack() {
  return recordSlackBodies({ channel: CHANNEL });
}

/** Defender: the isolation is accepted (Pending) and then reported Succeeded. */
function fakeDefender() {
  const isolations: string[] = [];
  const action = (id: string, status: string) =>
    fixture('machine-action', { id, status, machineId: MACHINE, requestorComment: 'MDR' });
  const defender = nock(MDE_ORIGIN, { reqheaders: { authorization: `Bearer ${MDE_TOKEN}` } }).persist();
  defender.post(`/prefix/api/machines/${MACHINE}/isolate`).reply(() => {
    isolations.push('ma-1');
    return [201, action('ma-1', 'Pending')];
  });
  defender
    .get('/prefix/api/machineactions')
    .query(true)
    .reply(200, { value: [action('ma-1', 'Succeeded')] });
  return { isolations };
}

it('exports one trace from ingest to the card post, and one from a click to the Defender call to the card update, with ids and no secrets', async () => {
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
  nockLogin();
  const slack = fakeSlack();
  const defender = fakeDefender();
  const prefix = `${redis.prefix}${Math.random().toString(36).slice(2)}:`;
  const store = new RedisStore({ url: redis.url }, prefix);
  let bot: BotServer | undefined = await startBot({
    env: {
      SLACK_BOT_TOKEN,
      SLACK_SIGNING_SECRET,
      SLACK_API_URL,
      POLICY_FILE: policy.path,
      DEFENDER_FOLLOW_SECONDS: '1',
      OTEL_EXPORTER_OTLP_ENDPOINT: `${collectorUrl}/`,
      OTEL_SERVICE_NAME: 'mdr-bot-under-test',
    },
    parts: {
      store,
      storeKind: 'redis',
      // Through Redis, as between replicas: the trace context travels in the job data.
      queue: new BullMqQueue({
        url: redis.url,
        keyPrefix: prefix,
        lanes: JOB_LANES,
        logger: createLogger('silent'),
      }),
      executor: new DefenderExecutor({
        credential: testCredential(),
        defenderApiUrl: MDE_URL,
        graphApiUrl: GRAPH_URL,
        sleep: fakeTime().sleep,
      }),
    },
    mounts: (rt) => ({ slack: createSlack(rt).handler }),
  });
  try {
    const ingested = await send(`${bot.url}/api/incidents`, {
      token: INGEST_TOKEN,
      body: sampleIngestBody(shippedSample()),
    });
    expect(ingested.status).toBe(201);
    await vi.waitFor(() => expect(slack.posts).toHaveLength(1), { timeout: 10_000, interval: 25 });
    await vi.waitFor(async () => expect((await store.getCardRefs('48213')).slack).toBeDefined(), {
      timeout: 5_000,
      interval: 25,
    });

    const click = await clickButton(bot.url, EXPERT, {
      action_id: 'approve:act-1',
      value: buttonValue('48213', 'act-1'),
    });
    expect(click.status).toBe(200);
    await vi.waitFor(async () => expect((await store.getAction('48213', 'act-1'))?.state).toBe('succeeded'), {
      timeout: 15_000,
      interval: 50,
    });
    expect(defender.isolations).toEqual(['ma-1']);
    await vi.waitFor(() => expect(slack.updates.at(-1)).toContain('Isolated'), {
      timeout: 5_000,
      interval: 50,
    });

    // Closing the bot flushes the spans still buffered to the collector.
    await bot.close();
    bot = undefined;

    const spans = collector.spans();
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const descendsFrom = (span: ExportedSpan, ancestor: ExportedSpan) => {
      for (
        let at: ExportedSpan | undefined = span;
        at;
        at = at.parentSpanId ? byId.get(at.parentSpanId) : undefined
      ) {
        if (at.spanId === ancestor.spanId) return true;
      }
      return false;
    };
    const named = (name: string) => spans.filter((s) => s.name === name);

    // Ingest: the API request, the delivery job it queued, and the card posted to Slack, in one trace.
    const [ingest] = named('POST /api/incidents');
    expect(ingest?.attributes).toMatchObject({
      'mdr.incident.id': '48213',
      'mdr.platform': 'api',
      'http.route': '/api/incidents',
      'http.response.status_code': 201,
    });
    const [post] = named('slack chat.postMessage');
    expect(post?.traceId).toBe(ingest?.traceId);
    expect(post && ingest && descendsFrom(post, ingest)).toBe(true);
    expect(post?.attributes).toMatchObject({ 'mdr.incident.id': '48213', 'mdr.platform': 'slack' });
    const ingestDelivery = spans.find((s) => s.name === 'job deliver' && s.traceId === ingest?.traceId);
    expect(ingestDelivery?.attributes).toMatchObject({
      'mdr.job.name': 'deliver',
      'mdr.incident.id': '48213',
    });

    // Click: the block_actions request, the execute job, Defender's isolate call, the card update.
    const [approval] = named('slack block_actions');
    expect(approval?.attributes).toMatchObject({
      'mdr.platform': 'slack',
      'mdr.incident.id': '48213',
      'mdr.action.id': 'act-1',
      'mdr.action.type': 'isolateDevice',
      'mdr.verb': 'approve',
    });
    expect(approval?.traceId).not.toBe(ingest?.traceId);
    const execute = spans.find((s) => s.name === 'job execute' && s.traceId === approval?.traceId);
    expect(execute?.attributes).toMatchObject({ 'mdr.incident.id': '48213', 'mdr.action.id': 'act-1' });
    // The execute job ran on whichever worker took it, in the click's trace: the context crossed the queue.
    expect(execute && approval && descendsFrom(execute, approval)).toBe(true);
    const submit = named('submit isolateDevice').find((s) => s.traceId === approval?.traceId);
    expect(submit?.attributes).toMatchObject({
      'mdr.incident.id': '48213',
      'mdr.action.id': 'act-1',
      'mdr.action.type': 'isolateDevice',
      'mdr.submit.result': 'submitted',
    });
    const defenderCall = named('Defender POST').find((s) => s.traceId === approval?.traceId);
    expect(defenderCall?.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.response.status_code': 201,
      'server.address': 'mde.test.local',
    });
    expect(defenderCall && approval && descendsFrom(defenderCall, approval)).toBe(true);
    const update = named('slack chat.update').find(
      (s) =>
        s.traceId === approval?.traceId &&
        BigInt(s.startTimeUnixNano) >= BigInt(defenderCall?.endTimeUnixNano ?? '0'),
    );
    expect(update && approval && descendsFrom(update, approval)).toBe(true);

    expect(collector.resources()[0]).toMatchObject({ 'service.name': 'mdr-bot-under-test' });

    // No token, secret or incident text in anything exported.
    const body = sampleIngestBody(shippedSample());
    const exported = collector.bodies.join('\n');
    for (const secret of [
      SLACK_BOT_TOKEN,
      SLACK_SIGNING_SECRET,
      INGEST_TOKEN,
      ADMIN_TOKEN,
      MDE_TOKEN,
      'test-secret-value',
      body.incident.displayName,
      ...body.incident.alerts.flatMap((alert) => [alert.title, alert.description]),
    ]) {
      expect(exported).not.toContain(secret);
    }
    const values = [
      ...spans.flatMap((s) => Object.values(s.attributes)),
      ...collector.resources().flatMap(Object.values),
    ];
    expect(values.filter((v) => typeof v === 'string' && /xox[bp]-|Bearer |secret/i.test(v))).toEqual([]);
  } finally {
    await bot?.close();
  }
});
