import { describe, expect, it } from 'vitest';
import { StaticAssetDirectory } from '../../../adapters/static-directory.js';
import { approveAction } from '../../../core/approve-action.js';
import { changeExclusions } from '../../../core/change-exclusions.js';
import { AssetLookupError } from '../../../core/errors.js';
import { executeAction } from '../../../core/execute-action.js';
import { handOverAction } from '../../../core/hand-over-action.js';
import { ingestIncident } from '../../../core/ingest-incident.js';
import { markTaskDone } from '../../../core/mark-task-done.js';
import type { Exclusions } from '../../../core/model.js';
import type { AssetDirectory, ResponseExecutor } from '../../../core/ports.js';
import { recoverApprovals } from '../../../core/recover-approvals.js';
import { remindTask } from '../../../core/remind-task.js';
import { retryAction } from '../../../core/retry-action.js';
import { ADMIN, CUSTOMER, coreHarness, EXPERT } from '../../support/core-harness.js';
import { sampleIngestBody, shippedSample } from '../../support/incident-factory.js';

const INGEST = { id: 'api:ingest', platform: 'api' } as const;
const ISOLATE = { incidentId: '48213', actionId: 'act-1' };
const FAILURE = 'Defender answered 400: the device is offline';

/** An executor whose first request fails and whose later ones succeed, counting every request sent. */
function failsOnce(): ResponseExecutor & { sent: number } {
  const executor = {
    dryRun: false,
    sent: 0,
    async submit() {
      executor.sent += 1;
      return executor.sent === 1
        ? { kind: 'finished' as const, outcome: { ok: false as const, reason: FAILURE } }
        : {
            kind: 'submitted' as const,
            externalId: `ma-${executor.sent}`,
            status: 'Pending',
            progress: 'Pending',
          };
    },
    async check() {
      return [];
    },
  };
  return executor;
}

/** The isolation of the sample incident, approved and failed on its first run. */
async function failedIsolation(
  options: { directory?: AssetDirectory; policy?: { exclusions: Exclusions } } = {},
) {
  const executor = failsOnce();
  const h = coreHarness({ executor, ...options });
  await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
  await approveAction(h.deps, ISOLATE, EXPERT);
  const run = await executeAction(h.deps, ISOLATE);
  expect(run).toMatchObject({ status: 'done', action: { state: 'failed', error: FAILURE } });
  h.jobs.jobs.splice(0);
  return { ...h, executor };
}

describe('retrying a failed action', () => {
  it('approves it again for an expert, audited, with an execution job of its own and a clean slate', async () => {
    const h = await failedIsolation();
    const before = await h.store.getAction('48213', 'act-1');
    expect(before).toMatchObject({ executingSince: expect.any(String), error: FAILURE });

    const decision = await retryAction(h.deps, ISOLATE, EXPERT);

    expect(decision).toMatchObject({
      ok: true,
      action: { state: 'approved', decidedBy: EXPERT.id, attempt: 2 },
    });
    const action = await h.store.getAction('48213', 'act-1');
    for (const field of [
      'externalId',
      'executionToken',
      'leaseAt',
      'submittedAt',
      'remoteStatus',
      'error',
      'result',
      'progress',
      'unsent',
      'executingSince',
    ] as const) {
      expect(action?.[field], field).toBeUndefined();
    }
    expect(h.jobs.jobs).toEqual([{ kind: 'execute', ...ISOLATE, retry: action?.version }]);
    const audit = await h.store.listAudit('48213');
    expect(audit.at(-1)).toMatchObject({
      actor: EXPERT.id,
      event: 'retry',
      outcome: 'ok',
      detail: 'approved (retry, attempt 2)',
    });
  });

  it('runs the new attempt once and follows it by its own remote id', async () => {
    const h = await failedIsolation();
    await retryAction(h.deps, ISOLATE, EXPERT);
    const run = await executeAction(h.deps, ISOLATE);
    expect(run).toMatchObject({ status: 'done', action: { state: 'executing', externalId: 'ma-2' } });
    expect(await executeAction(h.deps, ISOLATE)).toMatchObject({ status: 'skipped' });
    expect(h.executor.sent).toBe(2);
  });

  it('refuses customers and admins who are not experts, and audits it', async () => {
    const h = await failedIsolation();
    for (const actor of [CUSTOMER, ADMIN]) {
      expect(await retryAction(h.deps, ISOLATE, actor)).toMatchObject({ ok: false, code: 'not_expert' });
      expect(await handOverAction(h.deps, ISOLATE, actor)).toMatchObject({ ok: false, code: 'not_expert' });
    }
    expect((await h.store.getAction('48213', 'act-1'))?.state).toBe('failed');
    const refused = (await h.store.listAudit('48213')).filter((e) => e.outcome === 'refused');
    expect(refused.map((e) => `${e.event}:${e.actor}`)).toEqual([
      `retry:${CUSTOMER.id}`,
      `handover:${CUSTOMER.id}`,
      `retry:${ADMIN.id}`,
      `handover:${ADMIN.id}`,
    ]);
    expect(h.jobs.jobs).toEqual([]);
  });

  it('refuses an action that has not failed', async () => {
    const h = coreHarness();
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
    expect(await retryAction(h.deps, ISOLATE, EXPERT)).toMatchObject({
      ok: false,
      code: 'already_handled',
      message: 'only a failed action can be retried: this action is already proposed',
    });
    expect(await handOverAction(h.deps, ISOLATE, EXPERT)).toMatchObject({
      ok: false,
      code: 'already_handled',
    });
    expect(await retryAction(h.deps, { incidentId: '48213', actionId: 'act-99' }, EXPERT)).toMatchObject({
      ok: false,
      code: 'not_found',
    });
  });

  it('checks exclusions again: an asset excluded since the failure becomes a customer task, reminded', async () => {
    const h = await failedIsolation();
    await changeExclusions(h.deps, { op: 'add', kind: 'device-group', value: 'Finance-Workstations' }, ADMIN);
    h.jobs.jobs.splice(0);

    const decision = await retryAction(h.deps, ISOLATE, EXPERT);

    expect(decision).toMatchObject({
      ok: false,
      code: 'asset_excluded',
      action: { state: 'customerPending', excludedBy: 'device group Finance-Workstations' },
    });
    expect(h.jobs.jobs).toEqual([{ kind: 'remind', ...ISOLATE, dueAt: '2026-11-28T10:00:00.000Z' }]);
    expect(h.executor.sent).toBe(1);
    expect((await h.store.listAudit('48213')).at(-1)).toMatchObject({
      event: 'retry',
      outcome: 'refused',
      detail: 'asset_excluded: device group Finance-Workstations; now customerPending',
    });
  });

  it('fails closed when the exclusions cannot be verified: it stays failed and the expert is told why', async () => {
    const directory = new StaticAssetDirectory();
    let down = false;
    const flaky: AssetDirectory = {
      deviceFacts: async (device, incident) => {
        if (down) throw new AssetLookupError('Defender answered 503 for the device');
        return directory.deviceFacts(device, incident);
      },
      resolveUser: (user, incident) => directory.resolveUser(user, incident),
      memberOfGroups: (user, groups) => directory.memberOfGroups(user, groups),
    };
    const h = await failedIsolation({
      directory: flaky,
      policy: { exclusions: { devices: [{ group: 'Domain Controllers' }], users: [] } },
    });
    down = true;

    const decision = await retryAction(h.deps, ISOLATE, EXPERT);

    expect(decision).toMatchObject({ ok: false, code: 'exclusion_unverifiable' });
    expect(decision.ok === false && decision.message).toContain('Defender answered 503 for the device');
    expect((await h.store.getAction('48213', 'act-1'))?.state).toBe('failed');
    expect(h.jobs.jobs).toEqual([]);
  });

  it('is named by its approved version when recovery finds its job lost', async () => {
    const h = await failedIsolation();
    const retried = await retryAction(h.deps, ISOLATE, EXPERT);
    h.jobs.jobs.splice(0);
    h.clock.advance(10 * 60_000);
    expect(await recoverApprovals(h.deps, 60_000)).toBe(1);
    expect(h.jobs.jobs).toEqual([
      { kind: 'execute', ...ISOLATE, retry: retried.ok ? retried.action.version : -1, rerun: true },
    ]);
  });
});

describe('handing a failed action to the customer', () => {
  it('makes it a customer task whose guidance says why it failed, reminded and audited', async () => {
    const h = await failedIsolation();

    const decision = await handOverAction(h.deps, ISOLATE, EXPERT);

    expect(decision).toMatchObject({
      ok: true,
      action: { state: 'customerPending', handoverReason: FAILURE },
    });
    const [task] = await h.store.listTasks('pending');
    expect(task).toMatchObject({ id: '48213:act-1', state: 'pending', excludedBy: null });
    expect(task?.guidance).toContain(FAILURE);
    expect(task?.guidance).toContain('Isolate device');
    expect(h.jobs.jobs).toEqual([{ kind: 'remind', ...ISOLATE, dueAt: '2026-11-28T10:00:00.000Z' }]);
    expect((await h.store.listAudit('48213')).at(-1)).toMatchObject({
      actor: EXPERT.id,
      event: 'handover',
      outcome: 'ok',
      detail: `customerPending (handed over: ${FAILURE})`,
    });
    expect(await remindTask(h.deps, ISOLATE)).toBe(true);
    expect(h.notifier.overdue[0]?.guidance).toContain(FAILURE);
    expect(await markTaskDone(h.deps, ISOLATE, CUSTOMER)).toMatchObject({
      ok: true,
      action: { state: 'doneByCustomer' },
    });
    expect(await retryAction(h.deps, ISOLATE, EXPERT)).toMatchObject({ ok: false, code: 'already_handled' });
  });
});

describe('two experts acting on the same failure at once', () => {
  it('lets one retry win: one approval, one job, the other refused', async () => {
    const h = await failedIsolation();
    const decisions = await Promise.all([
      retryAction(h.deps, ISOLATE, EXPERT),
      retryAction(h.deps, ISOLATE, { id: 'teams:expert-aad', platform: 'teams' }),
    ]);
    expect(decisions.filter((d) => d.ok)).toHaveLength(1);
    expect(decisions.filter((d) => !d.ok)).toMatchObject([{ code: 'already_handled' }]);
    expect(h.jobs.jobs.filter((j) => j.kind === 'execute')).toHaveLength(1);
  });
});
