import { describe, expect, it } from 'vitest';
import { ingestIncident } from '../../../core/ingest-incident.js';
import { markTaskDone } from '../../../core/mark-task-done.js';
import { remindTask } from '../../../core/remind-task.js';
import { actionRef, CUSTOMER, coreHarness, INGEST } from '../../support/core-harness.js';
import { sampleIngestBody, shippedSample } from '../../support/incident-factory.js';

const ref = actionRef;
/** The sample's act-5 (fin-app-07) is on a Finance-Servers device: excluded. */
const FIN_SERVERS = { devices: [{ group: 'Finance-Servers' }], users: [] };

describe('remindTask', () => {
  it('reminds while a task is pending and stops once done', async () => {
    const h = coreHarness({ policy: { exclusions: FIN_SERVERS } });
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), INGEST);
    expect(await remindTask(h.deps, ref('act-5'))).toBe(true);
    expect(h.notifier.overdue.map((t) => t.id)).toEqual(['48213:act-5']);
    await markTaskDone(h.deps, ref('act-5'), CUSTOMER);
    expect(await remindTask(h.deps, ref('act-5'))).toBe(false);
  });
});
