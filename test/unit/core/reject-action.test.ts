import { describe, expect, it } from 'vitest';
import { approveAction } from '../../../core/approve-action.js';
import { ingestIncident } from '../../../core/ingest-incident.js';
import { rejectAction } from '../../../core/reject-action.js';
import { ADMIN, actionRef, coreHarness, EXPERT, INGEST } from '../../support/core-harness.js';
import { sampleIngestBody, shippedSample } from '../../support/incident-factory.js';

const ref = actionRef;

describe('rejectAction', () => {
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
});
