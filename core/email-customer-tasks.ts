import { ACTION_CATALOGUE } from './actions.js';
import { assetOf } from './asset-name.js';
import { type Actor, auditEntry } from './decisions.js';
import type { ActionRecord, IncidentRecord, Task } from './model.js';
import type { CoreDeps, EmailMessage } from './ports.js';
import { taskOf } from './tasks.js';

const SYSTEM: Actor = { id: 'system', platform: 'system' };

/**
 * The event of an incident's first customer task, as earlier versions named it (one email per
 * incident): a job of that name still queued sends the incident's pending tasks.
 */
export const FIRST_TASK_EVENT = 'first-task';

const BATCH_PREFIX = 'tasks-';

/**
 * The event of one batch of new customer tasks: each task's action id and the version that made it a
 * task, sorted, so every replica (and every retry of the same request) names the same batch the same
 * way, and a task that becomes the customer's again later (handed over a second time) is a new batch.
 * `@` and `+` appear in no action id.
 */
export function batchEvent(actions: readonly Pick<ActionRecord, 'id' | 'version'>[]): string {
  const parts = actions.map((a) => `${a.id}@${a.version}`).sort();
  return `${BATCH_PREFIX}${parts.join('+')}`;
}

/** The action ids of a batch event; null for any other event (a reminder, the legacy first task). */
export function batchOf(event: string): string[] | null {
  if (!event.startsWith(BATCH_PREFIX)) return null;
  return event
    .slice(BATCH_PREFIX.length)
    .split('+')
    .map((part) => part.slice(0, part.lastIndexOf('@')))
    .filter((id) => id !== '');
}

/**
 * Ask for the one email of a batch of new customer tasks (`actions` as the transition that made them
 * tasks left them): one job per batch, named by it. Nothing is asked for an empty batch.
 */
export async function requestBatchEmail(
  deps: CoreDeps,
  incidentId: string,
  actions: readonly Pick<ActionRecord, 'id' | 'version'>[],
): Promise<void> {
  if (actions.length === 0) return;
  await requestTaskEmail(deps, incidentId, batchEvent(actions));
}

/** The event of the reminder due at `dueAt` (tasks created together share it, so they share one email). */
export function reminderEvent(dueAt: string): string {
  return `reminder-${dueAt}`;
}

/** The policy's notification addresses, or none. */
function recipientsOf(deps: CoreDeps): string[] {
  return deps.policy.notifications?.email ?? [];
}

/**
 * Ask for one notification email about an incident's customer tasks. The job is named by incident and
 * event, so every replica and every task of the same batch asks for the same one. Nothing is asked
 * when there is no mailer or no address in the policy.
 */
export async function requestTaskEmail(deps: CoreDeps, incidentId: string, event: string): Promise<void> {
  if (!deps.mailer || recipientsOf(deps).length === 0) return;
  await deps.jobs.schedule({ kind: 'email', incidentId, event });
}

/** What one email job came to. */
export type TaskEmailResult =
  | { status: 'sent'; tasks: number }
  | { status: 'skipped'; reason: string }
  | { status: 'failed'; reason: string };

/**
 * Run one email job: the customer tasks of its batch that are still pending (a reminder: every pending
 * task of the incident), with their guidance and where to mark them done, sent once to the policy's
 * addresses. An event already sent (its audit entry exists) is not sent
 * again, so a job added anew after the queue forgot the first still sends one email. A final failure is
 * audited on the incident and returned for the operators' log; it never touches the card.
 */
export async function emailCustomerTasks(
  deps: CoreDeps,
  job: { incidentId: string; event: string },
): Promise<TaskEmailResult> {
  const to = recipientsOf(deps);
  if (!deps.mailer || to.length === 0) return { status: 'skipped', reason: 'no mailer or no addresses' };
  const state = await deps.store.getIncident(job.incidentId);
  if (!state) return { status: 'skipped', reason: 'no such incident' };
  const detailOf = (outcome: string) => `${job.event}: ${outcome}`;
  const audit = await deps.store.listAudit(job.incidentId);
  if (audit.some((e) => e.event === 'email' && e.outcome === 'ok' && e.detail.startsWith(`${job.event}:`)))
    return { status: 'skipped', reason: 'already sent' };
  const batch = batchOf(job.event);
  const tasks = state.actions
    .filter((a) => batch === null || batch.includes(a.id))
    .map(taskOf)
    .filter((t): t is Task => t?.state === 'pending');
  if (tasks.length === 0) return { status: 'skipped', reason: 'no pending customer task' };

  const message = composeTaskEmail(state.incident, tasks, to, job.event);
  const result = await deps.mailer.send(message);
  const ids = { incidentId: job.incidentId };
  if (result.ok) {
    const sent = detailOf(`sent to ${to.length} address(es), ${tasks.length} task(s)`);
    await deps.store.appendAudit(auditEntry(deps, SYSTEM, 'email', 'ok', sent, ids));
    return { status: 'sent', tasks: tasks.length };
  }
  const failed = detailOf(`not sent: ${result.reason}`).slice(0, 500);
  await deps.store.appendAudit(auditEntry(deps, SYSTEM, 'email', 'failed', failed, ids));
  return { status: 'failed', reason: result.reason };
}

/** The email itself: severity and title in the subject; link, tasks, guidance and how to close them. */
export function composeTaskEmail(
  incident: IncidentRecord,
  tasks: Task[],
  to: string[],
  event: string,
): EmailMessage {
  const severity = incident.severity.charAt(0).toUpperCase() + incident.severity.slice(1);
  const reminder = event !== FIRST_TASK_EVENT && batchOf(event) === null;
  const title = oneLine(incident.title, 150);
  const subject = `${reminder ? 'Reminder: ' : ''}[${severity}] ${title}: ${tasks.length} action(s) for your team`;
  const lines = [
    reminder
      ? `These actions on incident ${incident.id} are still waiting for your team.`
      : `Incident ${incident.id} has ${tasks.length === 1 ? 'a new action' : `${tasks.length} new actions`} for your team to carry out.`,
    '',
    `Incident: ${title} (severity ${incident.severity})`,
    `Open it in Microsoft Defender: ${incident.portalUrl}`,
    '',
  ];
  tasks.forEach((task, i) => {
    const label = ACTION_CATALOGUE[task.type].label;
    lines.push(`${i + 1}. ${label} ${oneLine(assetOf(task, incident), 200)}`);
    lines.push(`   Task id: ${task.id}`);
    if (task.excludedBy) lines.push(`   Why it is yours: excluded by ${task.excludedBy}`);
    lines.push(`   What to do: ${oneLine(task.guidance, 2000)}`);
    lines.push('');
  });
  lines.push(
    'When a task is done, mark it done:',
    '  - in Teams or Slack: the Mark done button on the incident card, or the command "done <task id>" (Slack: /mdr done <task id>)',
    '  - through the API: POST /api/tasks/<task id>/done with the body {"by": "your name"}',
  );
  return { to, subject, text: lines.join('\n') };
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
