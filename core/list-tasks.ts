import type { Task } from './model.js';
import type { CoreDeps } from './ports.js';

/** Customer tasks, oldest first: `pending` ones to do, or `done` ones with who and when. */
export async function listTasks(
  deps: Pick<CoreDeps, 'store'>,
  status: 'pending' | 'done',
  limit = 500,
): Promise<Task[]> {
  return deps.store.listTasks(status, limit);
}
