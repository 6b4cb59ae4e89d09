import { ACTION_CATALOGUE, ACTION_STATES, type ActionState } from './actions.js';
import type { ActionRecord, Task } from './model.js';
import { LIFECYCLE, statesReaching } from './state-machine.js';

const SEPARATOR = ':';

/** A task's id names its incident and action: `48213:act-3` (ids never contain ":"). */
export function taskIdOf(incidentId: string, actionId: string): string {
  return `${incidentId}${SEPARATOR}${actionId}`;
}

export function parseTaskId(taskId: string): { incidentId: string; actionId: string } | null {
  const at = taskId.indexOf(SEPARATOR);
  if (at <= 0 || at === taskId.length - 1) return null;
  return { incidentId: taskId.slice(0, at), actionId: taskId.slice(at + 1) };
}

/** Longest failure reason a task's guidance quotes. */
const REASON_MAX = 300;

/**
 * What the customer is told to do: the catalogue's steps, preceded, for an action the experts handed
 * over after it failed, by why it failed (so the customer knows what stopped it and can work around it).
 */
export function guidanceOf(action: Pick<ActionRecord, 'type' | 'handoverReason'>): string {
  const steps = ACTION_CATALOGUE[action.type].guidance;
  if (!action.handoverReason) return steps;
  const reason = action.handoverReason.replace(/\s+/g, ' ').trim();
  const quoted = reason.length > REASON_MAX ? `${reason.slice(0, REASON_MAX - 1)}…` : reason;
  return `The experts could not carry this out (${quoted}), so it is now for your team. ${steps}`;
}

/** The lifecycle stage behind each task status: pending customer tasks, and those done or skipped. */
const TASK_STAGE = { pending: 'customerTasks', done: 'customerDone' } as const;

/** The task status of an action in `state`, or null when it is no customer task. */
function taskStatusOf(state: ActionState): Task['state'] | null {
  const { stage } = LIFECYCLE[state];
  if (stage === TASK_STAGE.pending) return 'pending';
  return stage === TASK_STAGE.done ? 'done' : null;
}

/**
 * The states from which an action may still become a task of `status` (those of the status included):
 * a store keeps a task index entry while its action is in one of them.
 */
export function statesBecoming(status: Task['state']): ActionState[] {
  return statesReaching(ACTION_STATES.filter((state) => taskStatusOf(state) === status));
}

/** The customer task behind an action, or null when the action is not one. */
export function taskOf(action: ActionRecord): Task | null {
  const status = taskStatusOf(action.state);
  if (!status) return null;
  return {
    id: taskIdOf(action.incidentId, action.id),
    incidentId: action.incidentId,
    actionId: action.id,
    type: action.type,
    target: action.target,
    state: status,
    excludedBy: action.excludedBy,
    guidance: guidanceOf(action),
    createdAt: action.createdAt,
    ...(action.doneBy ? { doneBy: action.doneBy } : {}),
    ...(action.doneByName ? { doneByName: action.doneByName } : {}),
    ...(action.doneAt ? { doneAt: action.doneAt } : {}),
    ...(action.state === 'skippedByCustomer' && action.skippedBy
      ? {
          skippedBy: action.skippedBy,
          ...(action.skippedByName ? { skippedByName: action.skippedByName } : {}),
          skippedAt: action.skippedAt,
          skipReason: action.skipReason,
        }
      : {}),
  };
}
