import { readFileSync } from 'node:fs';
import { parseIngestBody, toIncidentRecord } from '../../core/incident.js';
import type { ActionRecord, IncidentState } from '../../core/model.js';
import graphIncident from '../fixtures/graph-incident.json' with { type: 'json' };

/** A Graph incident as the fixture has it; a test may set other fields too (also ones the API refuses). */
export type SampleIncident = typeof graphIncident & Record<string, unknown>;

/** One managed-response action as a client sends it (before validation: tests also send bad ones). */
export interface IngestActionInput {
  id: string;
  type: string;
  status?: 'proposed' | 'completed';
  target: Record<string, string>;
  reason?: string;
  completedBy?: string;
  completedAt?: string;
  [field: string]: unknown;
}

/** The body of `POST /api/incidents` as a client sends it. */
export interface IngestBodyInput {
  incident: SampleIncident;
  managedResponse: { summary: string; actions: IngestActionInput[]; [field: string]: unknown };
  [field: string]: unknown;
}

/** The ids of the sample incident's assets (from test/fixtures/graph-incident.json). */
export const SAMPLE = {
  incidentId: '48213',
  workstationId: '4a1f9c2e7b3d8e06c5a2f1b9d7e3c8a0b6f2d4e1',
  workstation: 'fin-wks-0142.corp.contoso.com',
  serverId: '9e0d3b7c1a5f2e48d6c9b0a3f7e1d2c5b8a4f6e9',
  server: 'fin-app-07.corp.contoso.com',
  alexId: '5d9a0c3e-8f1b-4a7d-b2e6-9c4f1a8d3e70',
  alex: 'alex.vance@contoso.com',
  beaId: 'e6b2d8f4-1a3c-4e5f-9b7d-0c2a4e6f8b1d',
  bea: 'bea.ortiz@contoso.com',
  networkMessageId: '0c8e4a2f-6b1d-4f3e-9a70-08dd62d1c4b5',
  sha1: '2d6e8c1b9f4a7e3d5c0b8a6f1e9d2c7b4a3f5e8d',
} as const;

/** When the sample incident was received, and a "now" on the same day for card snapshots. */
export const RECEIVED_AT = '2025-03-14T09:05:00.000Z';
export const SAMPLE_NOW = new Date('2025-03-14T11:30:00.000Z');

/** Four managed-response actions (isolate, revoke sessions, soft delete, quarantine), aimed at the sample incident's assets. */
export function sampleActions(): IngestActionInput[] {
  return [
    {
      id: 'act-1',
      type: 'isolateDevice',
      status: 'proposed',
      target: { deviceId: SAMPLE.workstationId, deviceName: SAMPLE.workstation },
      reason: 'beaconing to known C2',
    },
    {
      id: 'act-2',
      type: 'revokeUserTokens',
      status: 'completed',
      target: { userId: SAMPLE.alexId, upn: SAMPLE.alex },
      completedBy: 'slack:U0EXPERT1',
      completedAt: '2025-03-14T09:12:00.000Z',
    },
    {
      id: 'act-3',
      type: 'softDeleteEmails',
      status: 'proposed',
      target: { networkMessageId: SAMPLE.networkMessageId, recipient: SAMPLE.bea },
    },
    {
      id: 'act-4',
      type: 'stopAndQuarantineFile',
      status: 'proposed',
      target: { deviceId: SAMPLE.workstationId, sha1: SAMPLE.sha1 },
    },
  ];
}

/**
 * The summary and the six actions of the sample shipped with the bot (samples/incident-48213.json, used
 * by the README and the demo), fresh each call: `sampleIngestBody(shippedSample())` is that file's body.
 */
export function shippedSample(): { summary: string; actions: IngestActionInput[] } {
  const file = JSON.parse(
    readFileSync(new URL('../../samples/incident-48213.json', import.meta.url), 'utf8'),
  ) as IngestBodyInput;
  return { summary: file.managedResponse.summary, actions: file.managedResponse.actions };
}

/**
 * The one ingest body factory: the sample incident (test/fixtures/graph-incident.json, the same
 * incident as samples/incident-48213.json) with `incident` fields, the summary and the action list
 * replaceable. A fresh object each call, so a test may change it.
 */
export function sampleIngestBody(
  overrides: { incident?: Partial<SampleIncident>; summary?: string; actions?: IngestActionInput[] } = {},
): IngestBodyInput {
  return {
    incident: { ...structuredClone(graphIncident), ...overrides.incident },
    managedResponse: {
      summary:
        overrides.summary ??
        'Alex Vance opened Invoice_0314.exe from a phishing email; it started PowerShell and beaconed to 203.0.113.45. The same email reached Bea Ortiz.',
      actions: overrides.actions ?? sampleActions(),
    },
  };
}

/**
 * An IncidentState as the store would return it: the body is parsed and turned into a record by core,
 * each action starts as ingest makes it (proposed, or succeeded when completed), then `states` sets
 * chosen fields per action id (state, decidedBy, error, ...).
 */
export function incidentState(
  options: { body?: unknown; receivedAt?: string; states?: Record<string, Partial<ActionRecord>> } = {},
): IncidentState {
  const receivedAt = options.receivedAt ?? RECEIVED_AT;
  const parsed = parseIngestBody(options.body ?? sampleIngestBody());
  const incident = toIncidentRecord(parsed, receivedAt);
  const actions = parsed.managedResponse.actions.map((a): ActionRecord => {
    const base: ActionRecord = {
      incidentId: incident.id,
      id: a.id,
      type: a.type,
      target: a.target,
      ...(a.reason ? { reason: a.reason } : {}),
      state: 'proposed',
      excludedBy: null,
      decidedBy: null,
      createdAt: receivedAt,
      updatedAt: receivedAt,
      version: 1,
    };
    const completed: Partial<ActionRecord> =
      a.status === 'completed'
        ? {
            state: 'succeeded',
            decidedBy: a.completedBy ?? 'mdr-experts',
            decidedAt: a.completedAt ?? receivedAt,
          }
        : {};
    return { ...base, ...completed, ...options.states?.[a.id] };
  });
  return { incident, actions };
}

/** Extra actions (beyond the four of sampleActions) so every lifecycle state appears once. */
export function everyStateActions(): IngestActionInput[] {
  return [
    ...sampleActions(),
    {
      id: 'act-5',
      type: 'releaseFileFromQuarantine',
      target: { deviceId: SAMPLE.serverId, sha1: SAMPLE.sha1, fileName: 'Invoice_0314.exe' },
      reason: 'false positive on the server copy',
    },
    { id: 'act-6', type: 'disableUser', target: { userId: SAMPLE.beaId } },
    { id: 'act-7', type: 'runAntivirusScan', target: { deviceId: SAMPLE.serverId } },
    { id: 'act-8', type: 'forcePasswordReset', target: { upn: SAMPLE.alex } },
    { id: 'act-9', type: 'restrictAppExecution', target: { deviceId: SAMPLE.serverId } },
    { id: 'act-10', type: 'suspendUser', target: { upn: SAMPLE.bea } },
  ];
}

/**
 * The sample incident with one action in each lifecycle state but `skippedByCustomer` (and one dry run);
 * failedWithClosedTasksIncident has a skipped task.
 */
export function everyStateIncident(): IncidentState {
  const decided = (who: string, at: string): Partial<ActionRecord> => ({
    decidedBy: who,
    decidedAt: at,
    updatedAt: at,
  });
  return incidentState({
    body: sampleIngestBody({ actions: everyStateActions() }),
    states: {
      'act-1': {
        state: 'succeeded',
        ...decided('slack:U0EXPERT1', '2025-03-14T10:42:00.000Z'),
        result: 'Defender: Succeeded',
      },
      'act-3': {
        state: 'customerPending',
        excludedBy: 'user group Executives',
      },
      'act-4': {
        state: 'executing',
        progress: 'Defender: InProgress',
        dryRun: true,
        ...decided('teams:6f2c0a4e-aad-object-id', '2025-03-14T10:50:00.000Z'),
      },
      'act-5': { state: 'expertTask', ...decided('slack:U0EXPERT1', '2025-03-14T10:55:00.000Z') },
      'act-6': { state: 'rejected', ...decided('slack:U0EXPERT2', '2025-03-14T10:20:00.000Z') },
      'act-7': {
        state: 'failed',
        error: 'Defender: TimeOut after 15 minutes',
        ...decided('slack:U0EXPERT1', '2025-03-14T10:30:00.000Z'),
      },
      'act-8': {
        state: 'doneByCustomer',
        excludedBy: 'user alex.vance@contoso.com',
        doneBy: 'api:servicenow',
        doneAt: '2025-03-13T16:05:00.000Z',
      },
      'act-9': { state: 'approved', ...decided('slack:U0EXPERT1', '2025-03-14T11:01:00.000Z') },
      'act-10': { blockedReason: 'group membership of bea.ortiz@contoso.com could not be read (Graph 503)' },
    },
  });
}

/** The sample incident where every action turned into a customer task (assets excluded). */
export function customerTasksOnlyIncident(): IncidentState {
  const pending: Partial<ActionRecord> = { state: 'customerPending', decidedBy: null };
  return incidentState({
    states: {
      'act-1': { ...pending, excludedBy: 'device group Finance-Workstations' },
      'act-2': { ...pending, excludedBy: 'user alex.vance@contoso.com' },
      'act-3': { ...pending, excludedBy: 'user group Executives' },
      'act-4': { ...pending, excludedBy: 'device group Finance-Workstations' },
    },
  });
}

/** The sample incident once nothing is left: done by experts, by the customer, or rejected. */
export function resolvedIncident(): IncidentState {
  return incidentState({
    states: {
      'act-1': {
        state: 'succeeded',
        decidedBy: 'slack:U0EXPERT1',
        decidedAt: '2025-03-14T10:42:00.000Z',
        result: 'Defender: Succeeded',
      },
      'act-3': {
        state: 'doneByCustomer',
        excludedBy: 'user group Executives',
        doneBy: 'teams:3b1d9f0e-customer-admin',
        doneAt: '2025-03-14T11:10:00.000Z',
      },
      'act-4': { state: 'rejected', decidedBy: 'slack:U0EXPERT2', decidedAt: '2025-03-14T10:45:00.000Z' },
    },
  });
}

/**
 * The sample incident once its remaining action failed: the experts' other action succeeded and the
 * customer's team closed both of its tasks, one done and one skipped with a reason. Still open work.
 */
export function failedWithClosedTasksIncident(): IncidentState {
  return incidentState({
    states: {
      'act-1': {
        state: 'failed',
        error: 'Defender: Failed (the device has not reported in for 7 days)',
        decidedBy: 'slack:U0EXPERT1',
        decidedAt: '2025-03-14T10:40:00.000Z',
        updatedAt: '2025-03-14T10:58:00.000Z',
      },
      'act-3': {
        state: 'doneByCustomer',
        excludedBy: 'user group Executives',
        doneBy: 'teams:3b1d9f0e-customer-admin',
        doneAt: '2025-03-14T11:10:00.000Z',
      },
      'act-4': {
        state: 'skippedByCustomer',
        excludedBy: 'device group Finance-Workstations',
        skippedBy: 'slack:U0CUSTOMER1',
        skippedAt: '2025-03-14T11:20:00.000Z',
        skipReason: 'the workstation was reimaged by our IT team',
      },
    },
  });
}
