import { describe, expect, it } from 'vitest';
import { StaticAssetDirectory } from '../../../adapters/static-directory.js';
import { approveAction } from '../../../core/approve-action.js';
import { changeExclusions } from '../../../core/change-exclusions.js';
import { AssetLookupError } from '../../../core/errors.js';
import { executeAction } from '../../../core/execute-action.js';
import { followActions } from '../../../core/follow-actions.js';
import { ingestIncident } from '../../../core/ingest-incident.js';
import { managedStatus } from '../../../core/managed-status.js';
import { markTaskDone } from '../../../core/mark-task-done.js';
import type { AssetDirectory, ResponseExecutor } from '../../../core/ports.js';
import { rejectAction } from '../../../core/reject-action.js';
import { remindTask } from '../../../core/remind-task.js';
import { ADMIN, CUSTOMER, coreHarness, EXPERT } from '../../support/core-harness.js';
import { sampleIngestBody, shippedSample } from '../../support/incident-factory.js';

const INGEST = { id: 'api:ingest', platform: 'api' } as const;
const ref = (actionId: string) => ({ incidentId: '48213', actionId });
const FIN_SERVERS = { devices: [{ group: 'Finance-Servers' }], users: [] };

describe('ingest', () => {
  it('stores the incident, turns actions on excluded assets into customer tasks, keeps completed ones done', async () => {
    const h = coreHarness({ policy: { exclusions: FIN_SERVERS } });
    const result = await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
    const states = Object.fromEntries(result.state.actions.map((a) => [a.id, a.state]));
    expect(states).toEqual({
      'act-1': 'proposed',
      'act-2': 'succeeded',
      'act-3': 'proposed',
      'act-4': 'proposed',
      'act-5': 'customerPending',
      'act-6': 'proposed',
    });
    expect(result.state.actions.find((a) => a.id === 'act-5')?.excludedBy).toBe(
      'device group Finance-Servers',
    );
    expect(h.jobs.jobs).toEqual([
      { kind: 'remind', incidentId: '48213', actionId: 'act-5', dueAt: '2026-11-28T10:00:00.000Z' },
    ]);
    expect(h.notifier.changed).toEqual(['48213']);
    expect(managedStatus(result.state.actions)).toBe('inProgress');
  });

  it('is idempotent: a re-sent incident keeps known actions and adds new ones', async () => {
    const h = coreHarness();
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
    await approveAction(h.deps, ref('act-1'), EXPERT);
    const body = sampleIngestBody(shippedSample());
    body.managedResponse.actions.push({
      id: 'act-7',
      type: 'runAntivirusScan',
      target: { deviceId: '4a1f9c2e7b3d8e06c5a2f1b9d7e3c8a0b6f2d4e1' },
    });
    const again = await ingestIncident(h.deps, body, INGEST);
    expect(again.created).toBe(false);
    expect(again.added.map((a) => a.id)).toEqual(['act-7']);
    expect(again.state.actions.find((a) => a.id === 'act-1')?.state).toBe('approved');
  });
});

describe('approve, reject, execute', () => {
  it('approves, schedules one execution, and the job carries it out', async () => {
    const h = coreHarness();
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
    const decision = await approveAction(h.deps, ref('act-1'), EXPERT);
    expect(decision).toMatchObject({ ok: true, action: { state: 'approved', decidedBy: 'slack:U0EXPERT1' } });
    expect(h.jobs.jobs).toContainEqual({ kind: 'execute', incidentId: '48213', actionId: 'act-1' });
    const run = await executeAction(h.deps, ref('act-1'));
    expect(run).toMatchObject({ status: 'done', action: { state: 'succeeded', dryRun: true } });
    expect(h.executor.records).toHaveLength(1);
    expect(await executeAction(h.deps, ref('act-1'))).toEqual({
      status: 'skipped',
      reason: 'action is succeeded',
    });
  });

  it('refuses a customer and audits the refusal', async () => {
    const h = coreHarness();
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
    const decision = await approveAction(h.deps, ref('act-1'), CUSTOMER);
    expect(decision).toMatchObject({ ok: false, code: 'not_expert' });
    expect((await h.store.getAction('48213', 'act-1'))?.state).toBe('proposed');
    const audit = await h.store.listAudit('48213');
    expect(audit.at(-1)).toMatchObject({
      actor: 'slack:U0CUSTOMER',
      event: 'approve',
      outcome: 'refused',
      actionId: 'act-1',
    });
  });

  it('makes proposed actions on a newly excluded asset customer tasks at once, and refuses their approval', async () => {
    const h = coreHarness();
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
    const change = await changeExclusions(
      h.deps,
      { op: 'add', kind: 'device', value: 'FIN-WKS-0142.corp.contoso.com' },
      ADMIN,
    );
    expect(change.ok && change.movedToCustomer.map((a) => a.id)).toEqual(['act-1', 'act-4']);
    const decision = await approveAction(h.deps, ref('act-1'), EXPERT);
    expect(decision).toMatchObject({
      ok: false,
      code: 'asset_excluded',
      message:
        'fin-wks-0142.corp.contoso.com is excluded by device name FIN-WKS-0142.corp.contoso.com: this is now a task for your team',
    });
    expect((await h.store.listTasks('pending')).map((t) => t.id)).toEqual(['48213:act-1', '48213:act-4']);
  });

  it('turns an approval into a customer task when the user joined an excluded group after ingest', async () => {
    const groups: Record<string, string[]> = {};
    const h = coreHarness({
      directory: new StaticAssetDirectory(groups),
      policy: { exclusions: { devices: [], users: [{ group: 'Executives' }] } },
    });
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
    groups['alex.vance@contoso.com'] = ['Executives'];
    const decision = await approveAction(h.deps, ref('act-6'), EXPERT);
    expect(decision).toMatchObject({
      ok: false,
      code: 'asset_excluded',
      message:
        'alex.vance@contoso.com is excluded by user group Executives: this is now a task for your team',
      action: { state: 'customerPending' },
    });
    expect(h.jobs.jobs.filter((j) => j.kind === 'execute')).toEqual([]);
  });

  it('refuses, fail-closed, when group membership cannot be read, and says why on the action', async () => {
    const down: AssetDirectory = {
      deviceFacts: async () => ({ id: 'x', tags: [] }),
      resolveUser: (user, incident) => new StaticAssetDirectory().resolveUser(user, incident),
      memberOfGroups: async () => {
        throw new AssetLookupError('Microsoft Graph answered 503');
      },
    };
    const h = coreHarness({
      directory: down,
      policy: { exclusions: { devices: [], users: [{ group: 'Executives' }] } },
    });
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
    const decision = await approveAction(h.deps, ref('act-6'), EXPERT);
    expect(decision).toMatchObject({ ok: false, code: 'exclusion_unverifiable' });
    const action = await h.store.getAction('48213', 'act-6');
    expect(action?.state).toBe('proposed');
    expect(action?.blockedReason).toContain('Microsoft Graph answered 503');
  });

  it('re-checks exclusions when the job runs: an asset excluded after approval is not touched', async () => {
    const h = coreHarness();
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
    await approveAction(h.deps, ref('act-1'), EXPERT);
    await changeExclusions(h.deps, { op: 'add', kind: 'device-group', value: 'Finance-Workstations' }, ADMIN);
    const run = await executeAction(h.deps, ref('act-1'));
    expect(run).toMatchObject({
      status: 'done',
      action: { state: 'customerPending', excludedBy: 'device group Finance-Workstations' },
    });
    expect(h.executor.records).toHaveLength(0);
  });

  it('records a failed execution with its reason, never leaving it executing', async () => {
    const h = coreHarness({
      executor: {
        dryRun: false,
        submit: async () => ({
          kind: 'finished',
          outcome: { ok: false, reason: 'Defender answered 403: the app lacks Machine.Isolate' },
        }),
        check: async () => [],
      },
    });
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
    await approveAction(h.deps, ref('act-1'), EXPERT);
    expect(await executeAction(h.deps, ref('act-1'))).toMatchObject({
      action: { state: 'failed', error: 'Defender answered 403: the app lacks Machine.Isolate' },
    });
  });

  it('leaves an action submitted before a crash to its follower: a second run sends nothing again', async () => {
    const h = coreHarness();
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
    await approveAction(h.deps, ref('act-1'), EXPERT);
    const sent: string[] = [];
    const remote: ResponseExecutor = {
      dryRun: false,
      submit: async (a) => {
        sent.push(a.id);
        return {
          kind: 'submitted',
          externalId: 'machine-action-1',
          status: 'Pending',
          progress: 'Defender: Pending',
        };
      },
      check: async (actions) =>
        actions.map((a) =>
          a.externalId === 'machine-action-1'
            ? { kind: 'finished', outcome: { ok: true, detail: 'Defender: Succeeded' } }
            : { kind: 'unknown', reason: 'not ours' },
        ),
    };
    const deps = { ...h.deps, executor: remote };

    expect(await executeAction(deps, ref('act-1'))).toMatchObject({
      status: 'done',
      action: { state: 'executing', externalId: 'machine-action-1', progress: 'Defender: Pending' },
    });
    expect(await executeAction(deps, ref('act-1'))).toEqual({
      status: 'skipped',
      reason: 'already submitted: followed by its remote id',
    });
    expect(sent).toEqual(['act-1']);

    expect(await followActions(deps)).toMatchObject({ inFlight: 1, ended: 1 });
    expect(await h.store.getAction('48213', 'act-1')).toMatchObject({
      state: 'succeeded',
      result: 'Defender: Succeeded',
    });
  });

  it('refuses malformed action references before reading the store, and audits them', async () => {
    const h = coreHarness();
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
    const bad = [
      { incidentId: '48213}x', actionId: 'act-1' },
      { incidentId: '48213', actionId: 'act 1' },
      { incidentId: '48213', actionId: 'act-1', role: 'expert' },
    ];
    for (const ref of bad) {
      expect(await approveAction(h.deps, ref as never, EXPERT)).toEqual({
        ok: false,
        code: 'not_found',
        message: 'no such incident or action',
      });
      expect(await rejectAction(h.deps, ref as never, EXPERT)).toMatchObject({
        ok: false,
        code: 'not_found',
      });
      expect(await markTaskDone(h.deps, ref as never, CUSTOMER)).toMatchObject({
        ok: false,
        code: 'not_found',
      });
    }
    const audit = await h.store.listAudit();
    expect(audit).toHaveLength(9);
    expect(
      audit.every(
        (e) => e.outcome === 'refused' && e.detail.startsWith('not_found: malformed action reference'),
      ),
    ).toBe(true);
    expect((await h.store.getAction('48213', 'act-1'))?.state).toBe('proposed');
  });

  it('rejects: experts only, proposed only', async () => {
    const h = coreHarness();
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
    expect(await rejectAction(h.deps, ref('act-1'), ADMIN)).toMatchObject({ ok: false, code: 'not_expert' });
    expect(await rejectAction(h.deps, ref('act-1'), EXPERT)).toMatchObject({
      ok: true,
      action: { state: 'rejected' },
    });
    expect(await approveAction(h.deps, ref('act-1'), EXPERT)).toMatchObject({
      ok: false,
      code: 'already_handled',
    });
  });

  it('makes release-from-quarantine a guided expert task, marked done by an expert', async () => {
    const h = coreHarness();
    const body = sampleIngestBody(shippedSample());
    body.managedResponse.actions.push({
      id: 'act-9',
      type: 'releaseFileFromQuarantine',
      target: {
        deviceId: '4a1f9c2e7b3d8e06c5a2f1b9d7e3c8a0b6f2d4e1',
        sha1: '2d6e8c1b9f4a7e3d5c0b8a6f1e9d2c7b4a3f5e8d',
      },
    });
    await ingestIncident(h.deps, body, INGEST);
    await approveAction(h.deps, ref('act-9'), EXPERT);
    expect(await executeAction(h.deps, ref('act-9'))).toMatchObject({ action: { state: 'expertTask' } });
    expect(h.executor.records).toHaveLength(0);
    expect(await markTaskDone(h.deps, ref('act-9'), CUSTOMER)).toMatchObject({
      ok: false,
      code: 'not_expert',
    });
    expect(await markTaskDone(h.deps, ref('act-9'), EXPERT)).toMatchObject({
      ok: true,
      action: { state: 'succeeded', doneBy: EXPERT.id },
    });
  });
});

describe('customer tasks', () => {
  it('is marked done by the customer, not by an expert, once', async () => {
    const h = coreHarness({ policy: { exclusions: FIN_SERVERS } });
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
    expect(await markTaskDone(h.deps, ref('act-5'), EXPERT)).toMatchObject({
      ok: false,
      code: 'not_customer',
    });
    expect(await markTaskDone(h.deps, ref('act-5'), CUSTOMER)).toMatchObject({
      ok: true,
      action: { state: 'doneByCustomer', doneBy: CUSTOMER.id },
    });
    expect(await markTaskDone(h.deps, ref('act-5'), CUSTOMER)).toMatchObject({
      ok: false,
      code: 'already_handled',
    });
    expect(await h.store.listTasks('pending')).toEqual([]);
    expect(await h.store.listTasks('done')).toMatchObject([
      { id: '48213:act-5', doneBy: CUSTOMER.id, doneAt: '2026-11-27T10:00:00.000Z' },
    ]);
  });

  it('reminds while a task is pending and stops once done', async () => {
    const h = coreHarness({ policy: { exclusions: FIN_SERVERS } });
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
    expect(await remindTask(h.deps, ref('act-5'))).toBe(true);
    expect(h.notifier.overdue.map((t) => t.id)).toEqual(['48213:act-5']);
    await markTaskDone(h.deps, ref('act-5'), CUSTOMER);
    expect(await remindTask(h.deps, ref('act-5'))).toBe(false);
  });

  it('derives the managed status', () => {
    expect(managedStatus([])).toBe('active');
    expect(managedStatus([{ state: 'proposed' }, { state: 'proposed' }])).toBe('active');
    expect(managedStatus([{ state: 'succeeded' }, { state: 'proposed' }])).toBe('inProgress');
    expect(managedStatus([{ state: 'succeeded' }, { state: 'customerPending' }])).toBe(
      'awaitingCustomerAction',
    );
    expect(managedStatus([{ state: 'succeeded' }, { state: 'doneByCustomer' }, { state: 'rejected' }])).toBe(
      'resolved',
    );
  });
});

describe('exclusion changes', () => {
  it('admins only; adds and removes rules; audited either way', async () => {
    const h = coreHarness({ directory: new StaticAssetDirectory() });
    expect(
      await changeExclusions(h.deps, { op: 'add', kind: 'user', value: 'ceo@contoso.com' }, CUSTOMER),
    ).toMatchObject({ ok: false, code: 'not_admin' });
    expect(
      await changeExclusions(h.deps, { op: 'add', kind: 'user', value: 'ceo@contoso.com' }, ADMIN),
    ).toMatchObject({
      ok: true,
      rule: 'user ceo@contoso.com',
      exclusions: { users: [{ upn: 'ceo@contoso.com' }] },
    });
    expect(
      await changeExclusions(h.deps, { op: 'remove', kind: 'user', value: 'CEO@contoso.com' }, ADMIN),
    ).toMatchObject({
      ok: true,
      exclusions: { users: [] },
    });
    const audit = await h.store.listAudit();
    expect(audit.map((e) => `${e.event}:${e.outcome}`)).toEqual([
      'exclude:refused',
      'exclude:ok',
      'unexclude:ok',
    ]);
  });
});
