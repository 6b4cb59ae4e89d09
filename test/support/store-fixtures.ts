import type { ActionRecord, AuditEntry, IncidentRecord } from '../../core/model.js';

/** An incident record as ingest stores it; fields can be replaced. */
export function incidentRecord(id: string, overrides: Partial<IncidentRecord> = {}): IncidentRecord {
  return {
    id,
    title: `Multi-stage incident ${id}`,
    severity: 'high',
    status: 'active',
    portalUrl: `https://security.microsoft.com/incidents/${id}`,
    summary: 'Invoice_0314.exe beaconed to 203.0.113.45',
    createdAt: '2026-11-27T09:00:00.000Z',
    updatedAt: '2026-11-27T09:00:00.000Z',
    receivedAt: '2026-11-27T09:05:00.000Z',
    devices: [{ id: 'dev-1', dnsName: 'ws-042.contoso.com', tags: ['VIP'] }],
    users: [{ id: 'user-1', upn: 'j.doe@contoso.com' }],
    files: [],
    messages: [],
    ...overrides,
  };
}

/** A proposed action (version 1) of an incident; fields can be replaced. */
export function actionRecord(
  incidentId: string,
  id: string,
  overrides: Partial<ActionRecord> = {},
): ActionRecord {
  return {
    incidentId,
    id,
    type: 'isolateDevice',
    target: { deviceId: 'dev-1', deviceName: 'ws-042.contoso.com' },
    state: 'proposed',
    excludedBy: null,
    decidedBy: null,
    createdAt: '2026-11-27T09:05:00.000Z',
    updatedAt: '2026-11-27T09:05:00.000Z',
    version: 1,
    ...overrides,
  };
}

/** An audit entry; without ids it belongs to the policy trail. */
export function auditEntry(
  event: string,
  ids: { incidentId?: string; actionId?: string } = {},
  overrides: Partial<AuditEntry> = {},
): AuditEntry {
  return {
    at: '2026-11-27T10:00:00.000Z',
    ...ids,
    actor: 'slack:U0EXPERT1',
    platform: 'slack',
    event,
    outcome: 'ok',
    detail: event,
    ...overrides,
  };
}

/** The next version of an action in state `state` (what the core's `transition` hands the store). */
export function moved(action: ActionRecord, state: ActionRecord['state'], patch: Partial<ActionRecord> = {}) {
  return { ...action, ...patch, state, version: action.version + 1 };
}
