import nock from 'nock';
import { describe, expect, it } from 'vitest';
import { DefenderAssetDirectory } from '../../adapters/defender-directory.js';
import { DefenderExecutor } from '../../adapters/defender-executor.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { runCommand } from '../../bot/commands.js';
import { buildIncidentView } from '../../cards/incident-view.js';
import { approveAction } from '../../core/approve-action.js';
import { executeAction } from '../../core/execute-action.js';
import { listTasks } from '../../core/list-tasks.js';
import { managedStatus } from '../../core/managed-status.js';
import { retryAction } from '../../core/retry-action.js';
import { runMyself } from '../../core/run-myself.js';
import { skipTask } from '../../core/skip-task.js';
import { ADMIN, CUSTOMER, coreHarness, EXPERT } from '../support/core-harness.js';
import { actionRecord, incidentRecord } from '../support/store-fixtures.js';
import {
  fakeTime,
  fixture,
  GRAPH_URL,
  IDS,
  MDE_ORIGIN,
  MDE_TOKEN,
  MDE_URL,
  testCredential,
  useRedisAndDefender,
} from './defender-helpers.js';

const REF = { incidentId: '48213', actionId: 'act-1' };
const MACHINE = `/prefix/api/machines/${IDS.serverId}`;
/** The policy of these tests: the server's device group is excluded from the experts' actions. */
const EXCLUDED_GROUP = { exclusions: { devices: [{ group: 'Domain Controllers' }], users: [] } };

const life = useRedisAndDefender(import.meta.filename);
const { closers } = life;
let next = 0;

const mde = () => nock(MDE_ORIGIN, { reqheaders: { authorization: `Bearer ${MDE_TOKEN}` } });

/**
 * Core dependencies on Redis with Defender (directory and executor) on the nocked API, and an isolation
 * of the Domain Controllers server made a customer task by the exclusion (an expert's approval found it).
 */
async function excludedServerTask() {
  const store = new RedisStore({ url: life.redis().url }, `${life.redis().prefix}${++next}:`);
  closers.push(() => store.close());
  const h = coreHarness({ store, policy: EXCLUDED_GROUP });
  const time = fakeTime();
  const options = {
    credential: testCredential(),
    defenderApiUrl: MDE_URL,
    graphApiUrl: GRAPH_URL,
    sleep: time.sleep,
    now: () => h.clock.now().getTime(),
  };
  h.deps.directory = new DefenderAssetDirectory(options);
  h.deps.executor = new DefenderExecutor(options);
  await store.upsertIncident(
    incidentRecord('48213', { devices: [{ id: IDS.serverId, dnsName: IDS.server, tags: [] }] }),
    [actionRecord('48213', 'act-1', { target: { deviceId: IDS.serverId, deviceName: IDS.server } })],
    [],
  );
  mde().get(MACHINE).reply(200, fixture('machine'));
  expect(await approveAction(h.deps, REF, EXPERT)).toMatchObject({ ok: false, code: 'asset_excluded' });
  expect(await store.getAction('48213', 'act-1')).toMatchObject({ state: 'customerPending' });
  h.jobs.jobs.splice(0);
  return { ...h, store };
}

describe('Run it myself', () => {
  it("carries out an admin's own task on an excluded asset: resolved live, one request, audited as the customer's decision", async () => {
    const h = await excludedServerTask();
    const posts: unknown[] = [];
    mde().get(MACHINE).reply(200, fixture('machine'));
    mde()
      .post(`${MACHINE}/isolate`)
      .reply((_uri, body) => {
        posts.push(body);
        return [201, fixture('machine-action', { id: 'ma-own', machineId: IDS.serverId, status: 'Pending' })];
      });

    const decided = await runMyself(h.deps, REF, ADMIN);
    expect(decided).toMatchObject({
      ok: true,
      action: { state: 'approved', decidedBy: ADMIN.id, decidedAs: 'customer' },
    });
    const [job] = h.jobs.jobs;
    expect(job).toMatchObject({ kind: 'execute', ...REF, retry: decided.ok ? decided.action.version : -1 });

    const run = await executeAction(h.deps, REF);
    expect(run).toMatchObject({
      status: 'done',
      action: { state: 'executing', externalId: 'ma-own', resolved: { deviceId: IDS.serverId } },
    });
    expect(posts).toHaveLength(1);
    expect(JSON.stringify(posts[0])).toContain(`approved by ${ADMIN.id}`);
    // The same job run twice sends nothing more: the action is followed by its remote id.
    expect(await executeAction(h.deps, REF)).toMatchObject({ status: 'skipped' });
    expect(posts).toHaveLength(1);
    expect(nock.isDone()).toBe(true);

    const audit = await h.store.listAudit('48213');
    expect(audit.find((e) => e.event === 'runMyself')).toMatchObject({
      actor: ADMIN.id,
      outcome: 'ok',
      detail: 'approved (customer decision: run by the customer admin)',
    });
    expect(await h.store.listTasks('pending')).toEqual([]);
  });

  it('does not run when the asset cannot be resolved live: failed, with the reason', async () => {
    const h = await excludedServerTask();
    mde().get(MACHINE).reply(404, fixture('error-not-found'));
    expect(await runMyself(h.deps, REF, ADMIN)).toMatchObject({ ok: true });
    const run = await executeAction(h.deps, REF);
    expect(run).toMatchObject({ status: 'done', action: { state: 'failed' } });
    expect(run.status === 'done' && run.action.error).toMatch(
      /^Not run: .*so the asset to act on cannot be identified/,
    );
  });

  it('is refused for experts and for customers who are not admins, and audited', async () => {
    const h = await excludedServerTask();
    expect(await runMyself(h.deps, REF, EXPERT)).toMatchObject({ ok: false, code: 'not_customer' });
    expect(await runMyself(h.deps, REF, CUSTOMER)).toMatchObject({ ok: false, code: 'not_admin' });
    expect(await h.store.getAction('48213', 'act-1')).toMatchObject({ state: 'customerPending' });
    expect(h.jobs.jobs).toEqual([]);
    const refused = (await h.store.listAudit('48213')).filter((e) => e.event === 'runMyself');
    expect(refused.map((e) => [e.actor, e.outcome])).toEqual([
      [EXPERT.id, 'refused'],
      [CUSTOMER.id, 'refused'],
    ]);
  });

  it("records the admin's name beside the id, and runs an antivirus scan task as the default Quick scan", async () => {
    const store = new RedisStore({ url: life.redis().url }, `${life.redis().prefix}${++next}:`);
    closers.push(() => store.close());
    const h = coreHarness({ store, policy: EXCLUDED_GROUP });
    await store.upsertIncident(
      incidentRecord('48213', { devices: [{ id: IDS.serverId, dnsName: IDS.server, tags: [] }] }),
      [
        actionRecord('48213', 'act-1', {
          type: 'runAntivirusScan',
          state: 'customerPending',
          excludedBy: 'device group Domain Controllers',
          target: { deviceId: IDS.serverId, deviceName: IDS.server },
        }),
      ],
      [],
    );
    const named = { ...ADMIN, name: '  Dana Admin  ' };
    expect(await runMyself(h.deps, REF, named)).toMatchObject({
      ok: true,
      action: {
        state: 'approved',
        decidedBy: ADMIN.id,
        decidedByName: 'Dana Admin',
        decidedAs: 'customer',
        scanType: 'Quick',
      },
    });
    const state = await store.getIncident('48213');
    const line = state
      ? buildIncidentView(state, { now: h.clock.now() }).groups.flatMap((g) => g.items)[0]
      : undefined;
    expect(line?.text).toBe(`Quick antivirus scan on ${IDS.server}`);
    expect(line?.status).toMatch(/^Approved by Dana Admin /);
    expect((await store.listAudit('48213')).at(-1)).toMatchObject({
      event: 'runMyself',
      actor: ADMIN.id,
      detail: 'approved (customer decision: run by the customer admin, Quick scan)',
    });
  });

  it('lets an expert retry of a failed customer run be bound by the exclusion again', async () => {
    const h = await excludedServerTask();
    mde().get(MACHINE).reply(404, fixture('error-not-found'));
    await runMyself(h.deps, REF, ADMIN);
    await executeAction(h.deps, REF);
    mde().get(MACHINE).reply(200, fixture('machine'));
    expect(await retryAction(h.deps, REF, EXPERT)).toMatchObject({ ok: false, code: 'asset_excluded' });
    expect(await h.store.getAction('48213', 'act-1')).toMatchObject({ state: 'customerPending' });
  });
});

describe('Skip', () => {
  it('closes a task with the reason given in the skip command: out of pending, filed with its reason', async () => {
    const h = await excludedServerTask();
    const reply = await runCommand(
      h.deps,
      'skip 48213:act-1 isolated by our own IT already',
      CUSTOMER,
      'socChannel',
    );
    expect(reply).toMatchObject({ kind: 'skip', shared: true, decision: { ok: true } });
    expect(await h.store.listTasks('pending')).toEqual([]);
    expect(await h.store.listTasks('done')).toMatchObject([
      {
        id: '48213:act-1',
        state: 'done',
        skippedBy: CUSTOMER.id,
        skipReason: 'isolated by our own IT already',
      },
    ]);
    // The API lists it under skipped, with the reason as README's Ingest API table names it, and not under done.
    expect(await listTasks(h.deps, 'done')).toEqual([]);
    expect(await listTasks(h.deps, 'skipped')).toMatchObject([
      { id: '48213:act-1', skippedBy: CUSTOMER.id, reason: 'isolated by our own IT already' },
    ]);
    const state = await h.store.getIncident('48213');
    expect(managedStatus(state?.actions ?? [])).toBe('resolved');
    expect((await h.store.listAudit('48213')).at(-1)).toMatchObject({
      event: 'skip',
      actor: CUSTOMER.id,
      outcome: 'ok',
      detail: 'skippedByCustomer: isolated by our own IT already',
    });
  });

  it('shows who skipped by the name their platform gave, the audit naming the id', async () => {
    const h = await excludedServerTask();
    const named = { ...CUSTOMER, name: 'Casey Customer' };
    expect(await skipTask(h.deps, REF, named, 'done by our own IT')).toMatchObject({
      ok: true,
      action: { state: 'skippedByCustomer', skippedBy: CUSTOMER.id, skippedByName: 'Casey Customer' },
    });
    expect(await h.store.listTasks('done')).toMatchObject([
      { id: '48213:act-1', skippedBy: CUSTOMER.id, skippedByName: 'Casey Customer' },
    ]);
    const state = await h.store.getIncident('48213');
    const line = state
      ? buildIncidentView(state, { now: h.clock.now() }).groups.flatMap((g) => g.items)[0]
      : undefined;
    expect(line?.status).toMatch(/^Skipped by Casey Customer at /);
    expect((await h.store.listAudit('48213')).at(-1)).toMatchObject({ event: 'skip', actor: CUSTOMER.id });
  });

  it('asks for a reason and changes nothing without one', async () => {
    const h = await excludedServerTask();
    expect(await runCommand(h.deps, 'skip 48213:act-1', CUSTOMER, 'socChannel')).toMatchObject({
      kind: 'usage',
      text: expect.stringMatching(/^Usage: skip <taskId> <reason>/),
    });
    expect(await skipTask(h.deps, REF, CUSTOMER, '   ')).toMatchObject({ ok: false, code: 'not_allowed' });
    expect(await h.store.listTasks('pending')).toMatchObject([{ id: '48213:act-1' }]);
  });

  it('is refused for experts', async () => {
    const h = await excludedServerTask();
    expect(await skipTask(h.deps, REF, EXPERT, 'not needed')).toMatchObject({
      ok: false,
      code: 'not_customer',
    });
    expect(await h.store.listTasks('pending')).toMatchObject([{ id: '48213:act-1' }]);
  });
});
