import type { ActionRef } from './approve-action.js';
import type { CoreDeps } from './ports.js';
import { taskOf } from './tasks.js';

/** A reminder job fired: if the task is still pending, tell the channel and schedule the next one. */
export async function remindTask(deps: CoreDeps, ref: ActionRef): Promise<boolean> {
  const action = await deps.store.getAction(ref.incidentId, ref.actionId);
  const task = action ? taskOf(action) : null;
  if (task?.state !== 'pending') return false;
  await deps.notifier.taskOverdue(task);
  const dueAt = new Date(deps.clock.now().getTime() + deps.policy.reminders.pendingTaskHours * 3_600_000);
  await deps.jobs.schedule({ kind: 'remind', ...ref, dueAt: dueAt.toISOString() });
  return true;
}
