import { describe, expect, it } from 'vitest';
import { approveAction } from '../../../core/approve-action.js';
import { executeAction } from '../../../core/execute-action.js';
import { ingestIncident } from '../../../core/ingest-incident.js';
import { markTaskDone } from '../../../core/mark-task-done.js';
import { actionRef, CUSTOMER, coreHarness, EXPERT, INGEST } from '../../support/core-harness.js';
import { sampleIngestBody, shippedSample } from '../../support/incident-factory.js';

const ref = actionRef;
/** The sample's act-5 (fin-app-07) is on a Finance-Servers device: excluded. */
const FIN_SERVERS = { devices: [{ group: 'Finance-Servers' }], users: [] };

describe('markTaskDone', () => {
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
});
