import type { Task } from '../core/model.js';
import { describeAction, taskIdentifiers } from './assets.js';
import { apiLink, detail, displayPerson, formatWhen } from './text.js';
import type { Tone } from './view-types.js';

/** One customer task as the `pending` answer shows it. */
export interface TaskLineView {
  taskId: string;
  incidentId: string;
  actionId: string;
  text: string;
  done: boolean;
  status: string;
  tone: Tone;
  details: string[];
}

/** The `pending` answer: customer tasks, cut with "and N more". */
export interface TaskListView {
  total: number;
  items: TaskLineView[];
  more: number;
  /** `${apiBaseUrl}/api/tasks?status=pending` when an API base URL was given. */
  moreUrl?: string;
}

/** Build the view of a task list (`/mdr pending`) from core tasks. */
export function buildTaskListView(
  tasks: readonly Task[],
  options: { apiBaseUrl?: string; now?: Date; maxShown?: number } = {},
): TaskListView {
  const now = options.now ?? new Date();
  const max = options.maxShown ?? 20;
  const moreUrl = apiLink(options.apiBaseUrl, '/api/tasks?status=pending');
  return {
    total: tasks.length,
    more: Math.max(0, tasks.length - max),
    ...(moreUrl ? { moreUrl } : {}),
    items: tasks.slice(0, max).map((t) => {
      const done = t.state === 'done';
      return {
        taskId: t.id,
        incidentId: t.incidentId,
        actionId: t.actionId,
        text: describeAction(t.type, t.target).text,
        done,
        status: done
          ? `Done${t.doneBy ? ` by ${displayPerson(t.doneBy, t.doneByName)}` : ''}${t.doneAt ? ` at ${formatWhen(t.doneAt, now)}` : ''}`
          : `Pending since ${formatWhen(t.createdAt, now)}`,
        tone: done ? 'good' : 'warning',
        details: [
          `Incident ${t.incidentId} · task ${t.id}`,
          ...taskIdentifiers(t),
          ...(t.excludedBy ? [`Excluded by ${detail(t.excludedBy)}`] : []),
          ...(done ? [] : [`How: ${detail(t.guidance)}`]),
        ],
      };
    }),
  };
}
