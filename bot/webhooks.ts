import { createHash, createHmac } from 'node:crypto';
import type { JobQueue } from '../adapters/job-queue.js';
import { type Actor, auditEntry } from '../core/decisions.js';
import { actionView, incidentView } from '../core/incident-view.js';
import { skippedTaskView } from '../core/list-tasks.js';
import type { ActionRecord, IncidentState } from '../core/model.js';
import type { ActionStore, Clock, DomainEvents } from '../core/ports.js';
import { taskOf } from '../core/tasks.js';
import {
  actionEventKey,
  actionEventOf,
  becameResolved,
  resolvedKey,
  type WebhookEventType,
} from '../core/webhook-events.js';
import type { Webhook } from './config.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

/** The job that POSTs one event to one webhook (lane `notify`). */
export const WEBHOOK_JOB = 'webhook';

/** Deliveries are retried this long after the event was queued, then given up (and audited). */
export const WEBHOOK_RETRY_SPAN_MS = 24 * 3_600_000;
/** The back-off between two tries stops growing here, so tries keep coming through the whole span. */
export const WEBHOOK_MAX_BACKOFF_MS = 3_600_000;
/**
 * Enough attempts for the span with the default 1 s first back-off (12 doublings to an hour, then one an
 * hour); the deadline, not this count, is what ends the tries.
 */
export const WEBHOOK_ATTEMPTS = 40;
/** One POST waits this long for an answer. */
export const WEBHOOK_TIMEOUT_MS = 10_000;
/** The header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>`. */
export const SIGNATURE_HEADER = 'X-MDR-Signature';

const SYSTEM: Actor = { id: 'system', platform: 'system' };
const CLOSED = new Set<ActionRecord['state']>([
  'succeeded',
  'rejected',
  'doneByCustomer',
  'skippedByCustomer',
]);

/** One event to one webhook; `body` is sent byte for byte on every try (the secret is not in it). */
export interface WebhookJob {
  eventId: string;
  type: WebhookEventType;
  url: string;
  incidentId: string;
  body: string;
  /** When the event was queued (epoch ms): tries end `WEBHOOK_RETRY_SPAN_MS` after it. */
  queuedAt: number;
}

/** The event as POSTed (JSON). */
export interface WebhookEvent {
  id: string;
  type: WebhookEventType;
  occurredAt: string;
  task?: unknown;
  action?: unknown;
  incident: { id: string; title: string; severity: string; managedStatus: string; portalUrl: string };
}

/** `X-MDR-Signature` for `body` sent at `t` (unix seconds), as Stripe and Slack sign. */
export function signatureHeader(secret: string, body: string, t: number): string {
  const v1 = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
  return `t=${t},v1=${v1}`;
}

/** A stable event id from what names the fact: the same fact seen twice gets the same id. */
export function eventIdOf(key: string): string {
  const hex = createHash('sha256').update(key).digest('hex');
  return `evt_${hex.slice(0, 32)}`;
}

/** A URL as logs and the audit trail show it: no query (it may carry a token), no credentials. */
export function shownUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

/** The job id of one event to one webhook: the same event queued twice is delivered once. */
export function webhookJobId(eventId: string, url: string): string {
  const hook = createHash('sha256').update(url).digest('hex').slice(0, 16);
  return `webhook/${eventId}/${hook}`;
}

export interface WebhookEventsDeps {
  store: ActionStore;
  queue: JobQueue;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  webhooks: readonly Webhook[];
}

/**
 * Turns the facts the core reports (each write once, by its winner) into events, and queues one durable
 * delivery per event and subscribed webhook. Never throws: a decision already made is not undone by a
 * queue that cannot be reached (the event is then logged as not queued and counted).
 */
export class WebhookEvents implements DomainEvents {
  constructor(private readonly deps: WebhookEventsDeps) {}

  async actionMoved(before: ActionRecord, after: ActionRecord): Promise<void> {
    const type = actionEventOf(before, after);
    const resolvable = CLOSED.has(after.state) && this.wanted('incident.resolved');
    if (!(type && this.wanted(type)) && !resolvable) return;
    await this.guard(after.incidentId, async () => {
      const state = await this.deps.store.getIncident(after.incidentId);
      if (!state) return;
      if (type && this.wanted(type)) await this.emitAction(type, after, state);
      if (resolvable && becameResolved(state.actions, [{ before, after }])) {
        await this.emit(
          'incident.resolved',
          resolvedKey(state.incident.id, state.actions),
          after.updatedAt,
          state,
        );
      }
    });
  }

  async actionsAdded(state: IncidentState, added: ActionRecord[]): Promise<void> {
    if (this.deps.webhooks.length === 0) return;
    await this.guard(state.incident.id, async () => {
      for (const action of added) {
        const type = actionEventOf(null, action);
        if (type && this.wanted(type)) await this.emitAction(type, action, state);
      }
      const changed = added.map((after) => ({ before: null, after }));
      if (this.wanted('incident.resolved') && becameResolved(state.actions, changed)) {
        const at = this.deps.clock.now().toISOString();
        await this.emit('incident.resolved', resolvedKey(state.incident.id, state.actions), at, state);
      }
    });
  }

  private wanted(type: WebhookEventType): boolean {
    return this.deps.webhooks.some((h) => h.events.includes(type));
  }

  private async guard(incidentId: string, run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } catch (error) {
      this.deps.metrics.webhookEvents.inc({ outcome: 'not_queued' });
      this.deps.logger.error(
        { incidentId, err: (error as Error).message },
        'webhook event not queued: the job queue or the store did not answer',
      );
    }
  }

  private async emitAction(
    type: Exclude<WebhookEventType, 'incident.resolved'>,
    action: ActionRecord,
    state: IncidentState,
  ): Promise<void> {
    const task = taskOf(action);
    const subject =
      type === 'action.failed'
        ? { action: actionView(action) }
        : { task: type === 'task.skipped' && task ? skippedTaskView(task) : task };
    await this.emit(type, actionEventKey(type, action), action.updatedAt, state, subject);
  }

  private async emit(
    type: WebhookEventType,
    key: string,
    occurredAt: string,
    state: IncidentState,
    subject: { task?: unknown; action?: unknown } = {},
  ): Promise<void> {
    const view = incidentView(state);
    const event: WebhookEvent = {
      id: eventIdOf(key),
      type,
      occurredAt,
      ...subject,
      incident: {
        id: view.id,
        title: view.title,
        severity: view.severity,
        managedStatus: view.managedStatus,
        portalUrl: view.portalUrl,
      },
    };
    const body = JSON.stringify(event);
    const queuedAt = this.deps.clock.now().getTime();
    for (const hook of this.deps.webhooks) {
      if (!hook.events.includes(type)) continue;
      const job: WebhookJob = { eventId: event.id, type, url: hook.url, incidentId: view.id, body, queuedAt };
      await this.deps.queue.add(WEBHOOK_JOB, job, {
        id: webhookJobId(event.id, hook.url),
        attempts: WEBHOOK_ATTEMPTS,
        maxBackoffMs: WEBHOOK_MAX_BACKOFF_MS,
      });
      this.deps.metrics.webhookEvents.inc({ outcome: 'queued' });
    }
  }
}

/** Thrown for a try worth repeating (429, 408, 5xx, no answer): the queue backs off and tries again. */
export class WebhookRetryError extends Error {
  override name = 'WebhookRetryError';
}

export type WebhookOutcome =
  | { status: 'delivered'; httpStatus: number }
  | { status: 'refused'; reason: string }
  | { status: 'failed'; reason: string };

export interface DeliveryDeps {
  store: ActionStore;
  clock: Clock;
  /** The webhooks of the policy in force now: a job for any other address is refused. */
  webhooks: readonly Webhook[];
  timeoutMs?: number;
}

/**
 * One try of one delivery. 2xx: delivered. 4xx other than 408 and 429, or a redirect: given up and
 * audited. 408, 429, 5xx, no answer: `WebhookRetryError` until `WEBHOOK_RETRY_SPAN_MS` after the event
 * was queued, then given up and audited. An address the policy in force does not name (anymore), or one
 * no longer subscribed to the event, is never called.
 */
export async function deliverWebhook(job: WebhookJob, deps: DeliveryDeps): Promise<WebhookOutcome> {
  const hook = deps.webhooks.find((h) => h.url === job.url);
  if (!hook?.events.includes(job.type)) {
    const reason = `${shownUrl(job.url)} is not a webhook of the policy for ${job.type}`;
    await audit(deps, job, 'refused', reason);
    return { status: 'refused', reason };
  }
  const t = Math.floor(deps.clock.now().getTime() / 1000);
  let retryReason: string;
  try {
    const response = await fetch(hook.url, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        'Content-Type': 'application/json',
        'User-Agent': 'mdr-chatops-bot',
        [SIGNATURE_HEADER]: signatureHeader(hook.secret, job.body, t),
      },
      body: job.body,
      signal: AbortSignal.timeout(deps.timeoutMs ?? WEBHOOK_TIMEOUT_MS),
    });
    await response.body?.cancel().catch(() => undefined);
    const status = response.status;
    if (status >= 200 && status < 300) return { status: 'delivered', httpStatus: status };
    if (status === 408 || status === 429 || status >= 500) retryReason = `HTTP ${status}`;
    else {
      const reason = `HTTP ${status}${status >= 300 && status < 400 ? ' (redirects are not followed)' : ''}`;
      await audit(deps, job, 'failed', reason);
      return { status: 'failed', reason };
    }
  } catch (error) {
    retryReason = `no answer (${(error as Error).name === 'TimeoutError' ? 'timed out' : (error as Error).message})`;
  }
  if (deps.clock.now().getTime() - job.queuedAt >= WEBHOOK_RETRY_SPAN_MS) {
    const reason = `${retryReason}, given up after 24 h of tries`;
    await audit(deps, job, 'failed', reason);
    return { status: 'failed', reason };
  }
  throw new WebhookRetryError(`${job.type} ${job.eventId} to ${shownUrl(job.url)}: ${retryReason}`);
}

async function audit(
  deps: Pick<DeliveryDeps, 'store' | 'clock'>,
  job: WebhookJob,
  outcome: 'refused' | 'failed',
  reason: string,
): Promise<void> {
  const detail = `${job.type} ${job.eventId} to ${shownUrl(job.url)}: ${reason}`.slice(0, 500);
  await deps.store.appendAudit(
    auditEntry(deps, SYSTEM, 'webhook', outcome, detail, { incidentId: job.incidentId }),
  );
}
