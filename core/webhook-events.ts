import { managedStatus } from './managed-status.js';
import type { ActionRecord } from './model.js';

/** The events a policy webhook may subscribe to (names are part of the public contract). */
export const WEBHOOK_EVENT_TYPES = [
  'task.created',
  'task.done',
  'task.skipped',
  'action.failed',
  'incident.resolved',
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** Events about one action (all but `incident.resolved`). */
export type ActionEventType = Exclude<WebhookEventType, 'incident.resolved'>;

/**
 * The fact one action write records, if it is one webhooks are told about: the action became a
 * customer task, the task was done or skipped, the action failed. `before` is null when ingest created
 * the action; a write that keeps the state (a lease renewed, progress noted) is no fact.
 */
export function actionEventOf(before: ActionRecord | null, after: ActionRecord): ActionEventType | null {
  if (before !== null && before.state === after.state) return null;
  switch (after.state) {
    case 'customerPending':
      return 'task.created';
    case 'doneByCustomer':
      return 'task.done';
    case 'skippedByCustomer':
      return 'task.skipped';
    case 'failed':
      return 'action.failed';
    default:
      return null;
  }
}

/**
 * Whether the incident's managed status became `resolved` through these writes: it is resolved with
 * `after` and was not with each action as it stood before (`before` null: the action did not exist).
 * Two closers of an incident's last two actions may both see it resolved; they see the same actions at
 * the same versions, so `resolvedKey` gives them one event id.
 */
export function becameResolved(
  actionsNow: readonly ActionRecord[],
  changed: readonly { before: ActionRecord | null; after: ActionRecord }[],
): boolean {
  if (actionsNow.length === 0 || managedStatus(actionsNow) !== 'resolved') return false;
  const earlier = new Map(changed.map((c) => [c.after.id, c.before]));
  const then = actionsNow.flatMap((a) => {
    if (!earlier.has(a.id)) return [a];
    const before = earlier.get(a.id);
    return before ? [before] : [];
  });
  return then.length === 0 || managedStatus(then) !== 'resolved';
}

/** What names one resolution of an incident: its actions and their versions when it was resolved. */
export function resolvedKey(incidentId: string, actionsNow: readonly ActionRecord[]): string {
  const versions = actionsNow
    .map((a) => `${a.id}@${a.version}`)
    .sort()
    .join(',');
  return `incident.resolved|${incidentId}|${versions}`;
}

/** What names one action fact: the action at the version the fact was written with. */
export function actionEventKey(type: ActionEventType, after: ActionRecord): string {
  return `${type}|${after.incidentId}|${after.id}|${after.version}`;
}
