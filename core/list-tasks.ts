import type { Task } from './model.js';
import type { CoreDeps } from './ports.js';

/** A skipped task as the API lists it: the task, with the customer's reason under `reason`. */
export type SkippedTask = Task & { reason?: string };

/**
 * Customer tasks, oldest first: `pending` ones to do, `done` ones with who and when, or `skipped` ones
 * (closed without being done) with who, when and why. The store keeps done and skipped tasks in one
 * index; they are told apart here.
 */
export async function listTasks(
  deps: Pick<CoreDeps, 'store'>,
  status: 'pending' | 'done' | 'skipped',
  limit = 500,
): Promise<SkippedTask[]> {
  if (status === 'pending') return deps.store.listTasks('pending', limit);
  const closed = await deps.store.listTasks('done', limit);
  if (status === 'done') return closed.filter((t) => t.skippedBy === undefined);
  return closed.filter((t) => t.skippedBy !== undefined).map(skippedTaskView);
}

/** A skipped task as `GET /api/tasks?status=skipped` lists it: the customer's reason under `reason`. */
export function skippedTaskView({ skipReason, ...task }: Task): SkippedTask {
  return { ...task, ...(skipReason !== undefined ? { reason: skipReason } : {}) };
}
