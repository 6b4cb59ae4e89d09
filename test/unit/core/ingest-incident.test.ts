import { describe, expect, it } from 'vitest';
import { approveAction } from '../../../core/approve-action.js';
import { ingestIncident } from '../../../core/ingest-incident.js';
import { managedStatus } from '../../../core/managed-status.js';
import { actionRef, coreHarness, EXPERT, INGEST } from '../../support/core-harness.js';
import { sampleIngestBody, shippedSample } from '../../support/incident-factory.js';

const ref = actionRef;
/** The sample's act-5 (fin-app-07) is on a Finance-Servers device: excluded. */
const FIN_SERVERS = { devices: [{ group: 'Finance-Servers' }], users: [] };

describe('ingestIncident', () => {
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
