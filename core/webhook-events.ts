import { managedStatus } from './managed-status.js';
import type { ActionRecord } from './model.js';
import type { ActionsWritten } from './ports.js';
import { LIFECYCLE } from './state-machine.js';

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
export function actionEventOf(
  before: Pick<ActionRecord, 'state'> | null,
  after: Pick<ActionRecord, 'state'>,
): ActionEventType | null {
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
  actionsNow: readonly Pick<ActionRecord, 'id' | 'state'>[],
  changed: readonly { before: Pick<ActionRecord, 'state'> | null; after: Pick<ActionRecord, 'id'> }[],
): boolean {
  if (actionsNow.length === 0 || managedStatus(actionsNow) !== 'resolved') return false;
  const earlier = new Map(changed.map((c) => [c.after.id, c.before]));
  const then = actionsNow.flatMap((a): Pick<ActionRecord, 'state'>[] => {
    if (!earlier.has(a.id)) return [a];
    const before = earlier.get(a.id);
    return before ? [before] : [];
  });
  return then.length === 0 || managedStatus(then) !== 'resolved';
}

/**
 * Whether the facts of a write that leaves an action `after` need the incident's other actions: only
 * when the write may be an event (the incident's managed status goes into it) or may resolve the
 * incident (an action left with nothing open for the experts). An approval, a start, a progress note
 * or an expert task is neither, whatever the action was before: its facts carry no `actions`, and the
 * store need not read them.
 */
export function factsNeedActions(after: Pick<ActionRecord, 'state'>): boolean {
  return actionEventOf(null, after) !== null || LIFECYCLE[after.state].openFor !== 'expert';
}

/** What names one resolution of an incident: its actions and their versions when it was resolved. */
export function resolvedKey(
  incidentId: string,
  actionsNow: readonly Pick<ActionRecord, 'id' | 'version'>[],
): string {
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

/** One fact of a write webhooks are told about, named by its key (the event id is derived from it). */
export interface WebhookFact {
  type: WebhookEventType;
  key: string;
  occurredAt: string;
  /** The action the fact is about (none for `incident.resolved`). */
  action?: ActionRecord;
}

/**
 * The facts of one write, from what it changed and the incident's actions right after it. The same write
 * always gives the same facts and keys, whether told at once or read back later from the audit feed.
 */
export function factsOf(written: ActionsWritten): WebhookFact[] {
  const changed = written.changed.map(({ before, after }) => ({
    before: before === null ? null : { state: before },
    after,
  }));
  const facts: WebhookFact[] = [];
  for (const { before, after } of changed) {
    const type = actionEventOf(before, after);
    if (type)
      facts.push({ type, key: actionEventKey(type, after), occurredAt: after.updatedAt, action: after });
  }
  const last = changed.at(-1)?.after;
  if (last && becameResolved(written.actions, changed)) {
    facts.push({
      type: 'incident.resolved',
      key: resolvedKey(last.incidentId, written.actions),
      occurredAt: last.updatedAt,
    });
  }
  return facts;
}
