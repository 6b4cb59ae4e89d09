import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DefenderExecutor } from '../../adapters/defender-executor.js';
import { MemoryStore } from '../../adapters/memory-store.js';
import { RedisStore } from '../../adapters/redis-store.js';
import type { RuntimeParts } from '../../bot/runtime.js';
import { approveAction } from '../../core/approve-action.js';
import type { ActionStore } from '../../core/ports.js';
import { ADMIN_TOKEN, type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { EXPERT } from '../support/core-harness.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import { fakeTime, GRAPH_URL, MDE_ORIGIN, MDE_URL, nockLogin, testCredential } from './defender-helpers.js';

let redis: TestRedis;
beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
});
afterAll(async () => {
  await redis.cleanup();
});

const backends: [string, () => ActionStore][] = [
  ['memory', () => new MemoryStore()],
  [
    'redis',
    () => new RedisStore({ url: redis.url }, `${redis.prefix}${Math.random().toString(36).slice(2)}:`),
  ],
];

describe.each(backends)('REST API on the %s store', (_name, makeStore) => {
  let bot: BotServer;
  let store: ActionStore;
  const startWith = async (env: Record<string, string> = {}, parts: Partial<RuntimeParts> = {}) => {
    store = makeStore();
    bot = await startBot({ env, parts: { store, ...parts } });
  };
  afterEach(async () => {
    await bot?.close();
    nock.cleanAll();
    nock.enableNetConnect();
  });

  it('ingests the sample incident and returns its managed-response state', async () => {
    await startWith();
    const res = await send(`${bot.url}/api/incidents`, {
      token: INGEST_TOKEN,
      body: sampleIngestBody(shippedSample()),
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      id: '48213',
      severity: 'high',
      managedStatus: 'inProgress',
      added: ['act-1', 'act-2', 'act-3', 'act-4', 'act-5', 'act-6'],
    });
    const again = await send(`${bot.url}/api/incidents`, {
      token: INGEST_TOKEN,
      body: sampleIngestBody(shippedSample()),
    });
    expect(again.status).toBe(200);
    expect(again.body.added).toEqual([]);

    const read = await send(`${bot.url}/api/incidents/48213`, { token: INGEST_TOKEN });
    expect(read.status).toBe(200);
    const act5 = read.body.actions.find((a: { id: string }) => a.id === 'act-5');
    expect(act5).toMatchObject({
      type: 'isolateDevice',
      state: 'customerPending',
      excludedBy: 'device group Finance-Servers',
      decidedBy: null,
    });
    expect(read.body.portalUrl).toMatch(/^https:\/\/security\.microsoft\.com\/incidents\/48213/);
  });

  it('reports an incident whose last action failed as in progress, the failure with its reason', async () => {
    nock.disableNetConnect();
    nock.enableNetConnect(/127\.0\.0\.1|localhost/);
    nockLogin();
    const isolate = nock(MDE_ORIGIN)
      .post('/prefix/api/machines/4a1f9c2e7b3d8e06c5a2f1b9d7e3c8a0b6f2d4e1/isolate')
      .reply(403, {
        error: { code: 'Forbidden', message: 'Missing application permission Machine.Isolate' },
      });
    const executor = new DefenderExecutor({
      credential: testCredential(),
      defenderApiUrl: MDE_URL,
      graphApiUrl: GRAPH_URL,
      sleep: fakeTime().sleep,
    });
    await startWith({}, { executor });
    const body = sampleIngestBody(shippedSample());
    body.managedResponse.actions = body.managedResponse.actions.filter((a: { id: string }) =>
      ['act-1', 'act-2'].includes(a.id),
    );
    await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body });

    const ref = { incidentId: '48213', actionId: 'act-1' };
    expect(await approveAction(bot.runtime.deps, ref, EXPERT)).toMatchObject({ ok: true });
    await expect
      .poll(async () => (await store.getAction('48213', 'act-1'))?.state, { timeout: 10_000, interval: 50 })
      .toBe('failed');

    const read = await send(`${bot.url}/api/incidents/48213`, { token: INGEST_TOKEN });
    expect(read.status).toBe(200);
    expect(read.body.managedStatus).toBe('inProgress');
    expect(read.body.actions.map((a: { id: string; state: string }) => [a.id, a.state])).toEqual([
      ['act-1', 'failed'],
      ['act-2', 'succeeded'],
    ]);
    expect(read.body.actions[0].error).toContain('403');
    expect(isolate.isDone()).toBe(true);
  });

  it('answers 400 naming the field, and stores nothing', async () => {
    await startWith();
    const body = sampleIngestBody(shippedSample());
    body.managedResponse.actions[0]!.target = {};
    const res = await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({
      code: 'invalid_body',
      field: 'managedResponse.actions[0].target.deviceId',
    });
    expect(res.body.error.message).toContain('managedResponse.actions[0].target.deviceId');
    const bad = await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, raw: '{"incident": ' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid_json');
    expect(await store.listIncidents(10)).toEqual([]);
  });

  it('answers 413 to a 2 MiB body and 401 to a wrong or missing token, storing nothing', async () => {
    await startWith();
    const big = sampleIngestBody(shippedSample());
    big.managedResponse.summary = 'x'.repeat(2 * 1024 * 1024);
    const tooLarge = await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body: big });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.error.code).toBe('payload_too_large');
    const wrong = await send(`${bot.url}/api/incidents`, {
      token: `${INGEST_TOKEN}x`,
      body: sampleIngestBody(shippedSample()),
    });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe('unauthorized');
    const missing = await send(`${bot.url}/api/incidents`, { body: sampleIngestBody(shippedSample()) });
    expect(missing.status).toBe(401);
    const admin = await send(`${bot.url}/api/incidents`, {
      token: ADMIN_TOKEN,
      body: sampleIngestBody(shippedSample()),
    });
    expect(admin.status).toBe(401);
    expect(await store.listIncidents(10)).toEqual([]);
  });

  it('lists pending tasks and marks one done through the API', async () => {
    await startWith();
    await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body: sampleIngestBody(shippedSample()) });
    const pending = await send(`${bot.url}/api/tasks?status=pending`, { token: INGEST_TOKEN });
    expect(pending.status).toBe(200);
    expect(pending.body.tasks).toMatchObject([
      {
        id: '48213:act-5',
        incidentId: '48213',
        actionId: 'act-5',
        type: 'isolateDevice',
        state: 'pending',
        excludedBy: 'device group Finance-Servers',
        guidance: expect.stringContaining('Isolate'),
      },
    ]);
    const done = await send(`${bot.url}/api/tasks/48213:act-5/done`, {
      token: INGEST_TOKEN,
      body: { by: 'servicenow' },
    });
    expect(done.status).toBe(200);
    expect(done.body.task).toMatchObject({ state: 'done', doneBy: 'api:servicenow' });
    const twice = await send(`${bot.url}/api/tasks/48213:act-5/done`, {
      token: INGEST_TOKEN,
      body: { by: 'servicenow' },
    });
    expect(twice.status).toBe(409);
    expect((await send(`${bot.url}/api/tasks`, { token: INGEST_TOKEN })).body.tasks).toEqual([]);
    expect(
      (await send(`${bot.url}/api/tasks?status=done`, { token: INGEST_TOKEN })).body.tasks,
    ).toMatchObject([{ id: '48213:act-5', doneBy: 'api:servicenow' }]);
    expect((await send(`${bot.url}/api/tasks?status=everything`, { token: INGEST_TOKEN })).status).toBe(400);
    expect(
      (await send(`${bot.url}/api/tasks/nope/done`, { token: INGEST_TOKEN, body: { by: 'x' } })).status,
    ).toBe(404);
    expect(
      (await send(`${bot.url}/api/tasks/48213:act-5/done`, { token: INGEST_TOKEN, body: {} })).status,
    ).toBe(400);
  });

  it('reads and replaces exclusions with the admin token only, validating the shape', async () => {
    await startWith();
    expect((await send(`${bot.url}/api/exclusions`, { token: INGEST_TOKEN })).status).toBe(401);
    const read = await send(`${bot.url}/api/exclusions`, { token: ADMIN_TOKEN });
    expect(read.body).toEqual({
      devices: [
        { group: 'Finance-Servers', source: 'policy file' },
        { tag: 'VIP', source: 'policy file' },
      ],
      users: [
        { upn: 'ceo@contoso.com', source: 'policy file' },
        { group: 'Executives', source: 'policy file' },
      ],
    });
    const putBack = await send(`${bot.url}/api/exclusions`, {
      method: 'PUT',
      token: ADMIN_TOKEN,
      body: read.body,
    });
    expect(putBack.status).toBe(200);
    expect(putBack.body).toEqual(read.body);
    const replaced = await send(`${bot.url}/api/exclusions`, {
      method: 'PUT',
      token: ADMIN_TOKEN,
      body: { devices: [{ name: 'dc01.contoso.com' }], users: [] },
    });
    expect(replaced.status).toBe(200);
    expect((await send(`${bot.url}/api/exclusions`, { token: ADMIN_TOKEN })).body).toEqual({
      devices: [
        { name: 'dc01.contoso.com', source: expect.stringMatching(/^added by api:admin at 20\d\d-/) },
      ],
      users: [],
    });
    const invalid = await send(`${bot.url}/api/exclusions`, {
      method: 'PUT',
      token: ADMIN_TOKEN,
      body: { devices: [{ host: 'x' }] },
    });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.field).toBe('devices[0]');
  });

  it('serves health, readiness and metrics, and a JSON 404', async () => {
    await startWith();
    expect((await send(`${bot.url}/healthz`)).body).toEqual({ status: 'ok' });
    expect((await send(`${bot.url}/readyz`)).status).toBe(200);
    const metrics = await fetch(`${bot.url}/metrics`);
    expect(await metrics.text()).toContain('mdr_http_requests_total');
    expect((await send(`${bot.url}/nowhere`)).body.error.code).toBe('not_found');
  });
});

describe('REST API without tokens configured', () => {
  it('answers 401 on every API route, saying which variable enables it', async () => {
    const bot = await startBot({ config: (c) => ({ ...c, ingestToken: undefined, adminToken: undefined }) });
    try {
      const res = await send(`${bot.url}/api/incidents`, {
        token: INGEST_TOKEN,
        body: sampleIngestBody(shippedSample()),
      });
      expect(res.status).toBe(401);
      expect(res.body.error.message).toContain('INGEST_TOKEN');
      expect((await send(`${bot.url}/api/exclusions`, { token: ADMIN_TOKEN })).body.error.message).toContain(
        'ADMIN_TOKEN',
      );
    } finally {
      await bot.close();
    }
  });
});
