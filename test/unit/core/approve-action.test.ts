import { describe, expect, it } from 'vitest';
import { StaticAssetDirectory } from '../../../adapters/static-directory.js';
import { approveAction } from '../../../core/approve-action.js';
import { changeExclusions } from '../../../core/change-exclusions.js';
import { AssetLookupError } from '../../../core/errors.js';
import { executeAction } from '../../../core/execute-action.js';
import { ingestIncident } from '../../../core/ingest-incident.js';
import { markTaskDone } from '../../../core/mark-task-done.js';
import type { AssetDirectory } from '../../../core/ports.js';
import { rejectAction } from '../../../core/reject-action.js';
import { ADMIN, actionRef, CUSTOMER, coreHarness, EXPERT, INGEST } from '../../support/core-harness.js';
import { sampleIngestBody, shippedSample } from '../../support/incident-factory.js';

const ref = actionRef;

describe('approveAction', () => {
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
});
