import { type ManagedStatus, managedStatus } from './managed-status.js';
import type { ActionRecord, IncidentState, Severity } from './model.js';

/** `GET /api/incidents/{id}`: the incident's managed-response state (fields are part of the contract). */
/** One action as `GET /api/incidents/{id}` returns it (and as webhooks send it). */
export type ActionView = IncidentView['actions'][number];

export interface IncidentView {
  id: string;
  title: string;
  severity: Severity;
  managedStatus: ManagedStatus;
  portalUrl: string;
  summary: string;
  receivedAt: string;
  actions: {
    id: string;
    type: ActionRecord['type'];
    state: ActionRecord['state'];
    target: ActionRecord['target'];
    excludedBy: string | null;
    decidedBy: string | null;
    updatedAt: string;
    reason?: string;
    progress?: string;
    result?: string;
    error?: string;
    blockedReason?: string;
    doneBy?: string;
    doneAt?: string;
    dryRun?: boolean;
  }[];
}

export function incidentView({ incident, actions }: IncidentState): IncidentView {
  return {
    id: incident.id,
    title: incident.title,
    severity: incident.severity,
    managedStatus: managedStatus(actions),
    portalUrl: incident.portalUrl,
    summary: incident.summary,
    receivedAt: incident.receivedAt,
    actions: actions.map(actionView),
  };
}

/** The REST API's view of one action. */
export function actionView(a: ActionRecord): ActionView {
  return {
    id: a.id,
    type: a.type,
    state: a.state,
    target: a.target,
    excludedBy: a.excludedBy,
    decidedBy: a.decidedBy,
    updatedAt: a.updatedAt,
    ...(a.reason ? { reason: a.reason } : {}),
    ...(a.progress ? { progress: a.progress } : {}),
    ...(a.result ? { result: a.result } : {}),
    ...(a.error ? { error: a.error } : {}),
    ...(a.blockedReason ? { blockedReason: a.blockedReason } : {}),
    ...(a.doneBy ? { doneBy: a.doneBy } : {}),
    ...(a.doneAt ? { doneAt: a.doneAt } : {}),
    ...(a.dryRun ? { dryRun: true } : {}),
  };
}
