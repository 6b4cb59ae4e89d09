import { createHash, createHmac } from 'node:crypto';
import type { JobQueue } from '../adapters/job-queue.js';
import { type Actor, auditEntry } from '../core/decisions.js';
import { actionView } from '../core/incident-view.js';
import { skippedTaskView } from '../core/list-tasks.js';
import { managedStatus } from '../core/managed-status.js';
import type { ActionRecord, IncidentRecord, IncidentState } from '../core/model.js';
import type { ActionStore, ActionsWritten, Clock, DomainEvents } from '../core/ports.js';
import { LIFECYCLE } from '../core/state-machine.js';
import { taskOf } from '../core/tasks.js';
import { actionEventOf, factsOf, type WebhookEventType, type WebhookFact } from '../core/webhook-events.js';
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
 * delivery per event and subscribed webhook: the fast path. `actionMoved` and `actionsAdded` never throw:
 * a decision already made is not undone by a queue that cannot be reached (the event is then logged as
 * not queued, counted, and sent by `WebhookRelay` from the audit feed).
 */
export class WebhookEvents implements DomainEvents {
  constructor(private readonly deps: WebhookEventsDeps) {}

  async actionMoved(before: ActionRecord, after: ActionRecord): Promise<void> {
    const type = actionEventOf(before, after);
    const resolvable = LIFECYCLE[after.state].openFor === null && this.wanted('incident.resolved');
    if (!(type && this.wanted(type)) && !resolvable) return;
    await this.guard(after.incidentId, async () => {
      const state = await this.deps.store.getIncident(after.incidentId);
      if (!state) return;
      await this.emitWritten(state.incident, {
        changed: [{ before: before.state, after }],
        actions: state.actions,
      });
    });
  }

  async actionsAdded(state: IncidentState, added: ActionRecord[]): Promise<void> {
    await this.guard(state.incident.id, () =>
      this.emitWritten(state.incident, {
        changed: added.map((after) => ({ before: null, after })),
        actions: state.actions,
      }),
    );
  }

  /**
   * Queues the events of one write (as `factsOf` names them) to the webhooks subscribed. Throws when the
   * queue cannot be reached: the relay then tries again from the audit feed.
   */
  async emitWritten(
    incident: IncidentRecord,
    written: ActionsWritten,
    outcome: 'queued' | 'relayed' = 'queued',
  ): Promise<number> {
    let queued = 0;
    for (const fact of factsOf(written)) {
      if (!this.wanted(fact.type)) continue;
      queued += await this.emit(fact, incident, written.actions, outcome);
    }
    return queued;
  }

  private wanted(type: WebhookEventType): boolean {
    return this.deps.webhooks.some((h) => h.events.includes(type));
  }

  private async guard(incidentId: string, run: () => Promise<unknown>): Promise<void> {
    try {
      await run();
    } catch (error) {
      this.deps.metrics.webhookEvents.inc({ outcome: 'not_queued' });
      this.deps.logger.error(
        { incidentId, err: (error as Error).message },
        'webhook event not queued now: the job queue or the store did not answer (the relay queues it from the audit feed)',
      );
    }
  }

  private async emit(
    fact: WebhookFact,
    incident: IncidentRecord,
    actions: readonly Pick<ActionRecord, 'state'>[],
    outcome: 'queued' | 'relayed',
  ): Promise<number> {
    const { type, action } = fact;
    const task = action ? taskOf(action) : null;
    const subject = !action
      ? {}
      : type === 'action.failed'
        ? { action: actionView(action) }
        : { task: type === 'task.skipped' && task ? skippedTaskView(task) : task };
    const event: WebhookEvent = {
      id: eventIdOf(fact.key),
      type,
      occurredAt: fact.occurredAt,
      ...subject,
      incident: {
        id: incident.id,
        title: incident.title,
        severity: incident.severity,
        managedStatus: managedStatus(actions),
        portalUrl: incident.portalUrl,
      },
    };
    const body = JSON.stringify(event);
    const queuedAt = this.deps.clock.now().getTime();
    let queued = 0;
    for (const hook of this.deps.webhooks) {
      if (!hook.events.includes(type)) continue;
      const job: WebhookJob = {
        eventId: event.id,
        type,
        url: hook.url,
        incidentId: incident.id,
        body,
        queuedAt,
      };
      await this.deps.queue.add(WEBHOOK_JOB, job, {
        id: webhookJobId(event.id, hook.url),
        attempts: WEBHOOK_ATTEMPTS,
        maxBackoffMs: WEBHOOK_MAX_BACKOFF_MS,
      });
      this.deps.metrics.webhookEvents.inc({ outcome });
      queued += 1;
    }
    return queued;
  }
}

/** The periodic job relaying webhook events from the audit feed (lane `maintenance`). */
export const WEBHOOK_RELAY_JOB = 'webhook-relay';
export const WEBHOOK_RELAY_EVERY_MS = 30_000;
/** The store cursor (`cursor:webhook-relay`): the last audit feed line relayed. */
export const WEBHOOK_RELAY_CURSOR = 'webhook-relay';
const RELAY_PAGE = 200;
/** Lines read in one run at most; a longer backlog is carried on by the next run. */
const RELAY_MAX_LINES = 5_000;

/**
 * The outbox relay: each action write stores its facts with its audit feed line in the same step (one
 * script on one Redis server), and this reads the feed from a stored cursor, queues the events of each
 * line with their stable ids (the queue drops a job whose id it already has, so an event queued at once
 * by its writer is not sent twice) and then moves the cursor on. An event whose writer died, or whose
 * queue was down, before queueing it is so still delivered. Run once per interval across all replicas.
 */
export class WebhookRelay {
  constructor(
    private readonly deps: Pick<WebhookEventsDeps, 'store' | 'logger'> & { events: WebhookEvents },
  ) {}

  /** One run: how many feed lines were read and how many deliveries queued (duplicates included). */
  async runOnce(): Promise<{ lines: number; queued: number }> {
    const { store, logger, events } = this.deps;
    // First run: the facts of the last 24 h (stream ids are Redis time, so not the Clock port's).
    let cursor = (await store.getCursor(WEBHOOK_RELAY_CURSOR)) ?? `${Date.now() - WEBHOOK_RETRY_SPAN_MS}-0`;
    if (await store.auditFeedGap(cursor)) {
      logger.error(
        { cursor },
        'webhook relay: audit feed lines after its cursor were dropped before they were relayed; events of those writes that were not queued at once are lost (raise the feed bound or keep a replica running)',
      );
    }
    const incidents = new Map<string, IncidentRecord | null>();
    let lines = 0;
    let queued = 0;
    while (lines < RELAY_MAX_LINES) {
      const page = await store.listAuditFeed(cursor, RELAY_PAGE);
      for (const { written } of page) {
        const incidentId = written?.changed[0]?.after.incidentId;
        if (!written || incidentId === undefined) continue;
        if (!incidents.has(incidentId))
          incidents.set(incidentId, (await store.getIncident(incidentId))?.incident ?? null);
        const incident = incidents.get(incidentId);
        if (incident) queued += await events.emitWritten(incident, written, 'relayed');
      }
      const last = page.at(-1);
      if (!last) break;
      cursor = last.cursor;
      await store.setCursor(WEBHOOK_RELAY_CURSOR, cursor);
      lines += page.length;
      if (page.length < RELAY_PAGE) break;
    }
    return { lines, queued };
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
