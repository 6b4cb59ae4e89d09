import { describe, expect, it } from 'vitest';
import { approveAction } from '../../../core/approve-action.js';
import { changeExclusions } from '../../../core/change-exclusions.js';
import { executeAction } from '../../../core/execute-action.js';
import { followActions } from '../../../core/follow-actions.js';
import { ingestIncident } from '../../../core/ingest-incident.js';
import type { ResponseExecutor } from '../../../core/ports.js';
import { ADMIN, actionRef, coreHarness, EXPERT, INGEST } from '../../support/core-harness.js';
import { sampleIngestBody, shippedSample } from '../../support/incident-factory.js';

const ref = actionRef;

describe('executeAction', () => {
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
});
