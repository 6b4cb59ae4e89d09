import type { ActionRef } from './decisions.js';
import { reminderEvent, requestBatchEmail, requestTaskEmail } from './email-customer-tasks.js';
import type { ActionRecord } from './model.js';
import type { CoreDeps } from './ports.js';
import { taskOf } from './tasks.js';

/**
 * A reminder job fired: if the task is still pending, tell the channel, ask for the reminder email of
 * this due time (one per incident for the tasks due together) and schedule the next reminder.
 */
export async function remindTask(deps: CoreDeps, ref: ActionRef, firedDueAt?: string): Promise<boolean> {
  const action = await deps.store.getAction(ref.incidentId, ref.actionId);
  const task = action ? taskOf(action) : null;
  if (task?.state !== 'pending') return false;
  await deps.notifier.taskOverdue(task);
  if (firedDueAt) await requestTaskEmail(deps, ref.incidentId, reminderEvent(firedDueAt));
  await scheduleReminder(deps, ref);
  return true;
}

/** When a customer task created or reminded now is reminded next: `reminders.pendingTaskHours` later. */
export function nextReminderAt(deps: Pick<CoreDeps, 'clock' | 'policy'>): string {
  return new Date(
    deps.clock.now().getTime() + deps.policy.reminders.pendingTaskHours * 3_600_000,
  ).toISOString();
}

/** Schedule a customer task's next reminder (tasks created together pass one `dueAt`, so they share it). */
export function scheduleReminder(
  deps: Pick<CoreDeps, 'clock' | 'policy' | 'jobs'>,
  ref: ActionRef,
  dueAt: string = nextReminderAt(deps),
): Promise<void> {
  return deps.jobs.schedule({ kind: 'remind', ...ref, dueAt });
}

/**
 * An action just became a customer task: its reminder, the email of its batch and the card update,
 * queued together.
 */
export async function taskOpened(deps: CoreDeps, ref: ActionRef, task: ActionRecord): Promise<void> {
  await Promise.all([
    scheduleReminder(deps, ref),
    requestBatchEmail(deps, ref.incidentId, [task]),
    deps.notifier.incidentChanged(ref.incidentId),
  ]);
}
