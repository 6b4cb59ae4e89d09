import { setTimeout as sleep } from 'node:timers/promises';
import type { IncidentWriter, WriteFailure } from '../adapters/graph-incident-writer.js';
import type { JobQueue } from '../adapters/job-queue.js';
import { type Actor, auditEntry } from '../core/decisions.js';
import { isGraphIncidentId, planWriteback, writebackTarget } from '../core/incident-writeback.js';
import type { ActionStore, Clock } from '../core/ports.js';
import { retryDelayMs } from './delivery.js';
import type { Logger } from './logger.js';

/** The job that brings one Graph incident in step with the managed status. */
export const WRITEBACK_JOB = 'writeback';

export interface WritebackJob {
  incidentId: string;
  /** Tries after a 429, a 5xx or no answer so far (for back-off). */
  retry?: number;
}

/** Changes are gathered this long, so a burst of them is one PATCH with the latest status. */
export const WRITEBACK_GATHER_MS = 2_000;
/** A write-back that finds another one of the same incident running tries again after this long. */
export const WRITEBACK_BUSY_MS = 500;
/** Per-incident lease of one run (a GET and a PATCH, each bounded by the request timeout). */
export const WRITEBACK_LEASE_MS = 25_000;
/** Tries after a 429, a 5xx or no answer before the write-back is given up (minutes of back-off). */
export const MAX_WRITEBACK_RETRIES = 8;
/**
 * Graph throttles per app and tenant: a 429 on one incident pauses the write-back of every incident
 * until its Retry-After (kept in the store, so every replica waits).
 */
export const WRITEBACK_PAUSE = 'graph:security-incidents';

const SYSTEM: Actor = { id: 'system', platform: 'system' };

/** The coalescing key of one incident's write-back. */
export const writebackKey = (incidentId: string) => `writeback|${incidentId}`;

/**
 * Queue the write-back of one incident, coalesced: while one waits, this adds nothing (it reads the
 * latest state when it runs); while one runs, one more is queued after it.
 */
export async function requestWriteback(queue: JobQueue, incidentId: string, delayMs = WRITEBACK_GATHER_MS) {
  const data: WritebackJob = { incidentId };
  await queue.add(WRITEBACK_JOB, data, {
    coalesce: writebackKey(incidentId),
    ...(delayMs > 0 ? { delayMs } : {}),
    attempts: 3,
  });
}

/** Queue a write-back for later under a stable id (one per incident, time and try). */
async function requestLater(queue: JobQueue, job: WritebackJob, at: number, retry: number): Promise<void> {
  const data: WritebackJob = { incidentId: job.incidentId, retry };
  await queue.add(WRITEBACK_JOB, data, {
    id: `writeback-later|${encodeURIComponent(job.incidentId)}|${at}|${retry}`,
    delayMs: Math.max(0, at - Date.now()),
    attempts: 3,
    replaceFinished: true,
  });
}

/** What one write-back run needs. */
export interface WritebackDeps {
  store: ActionStore;
  queue: JobQueue;
  writer: IncidentWriter;
  clock: Clock;
  logger: Logger;
  /** The policy's `notifications.assignTo`. */
  assignTo?: string;
}

export type WritebackOutcome =
  | { status: 'skipped'; reason: string }
  | { status: 'inStep' }
  | { status: 'patched'; tag: string; assignedTo?: string }
  | { status: 'deferred'; untilMs: number; reason: string }
  | { status: 'failed'; reason: string };

/**
 * Run one write-back: under the incident's lease, read the Graph incident (its custom tags now, not
 * those of the notification received earlier: tags added in the portal since must be kept, and the
 * PATCH replaces the whole collection) and PATCH only what differs from the managed status. A 429
 * pauses every write-back until its Retry-After and re-queues this one then; a 5xx or no answer is
 * re-queued with back-off; a final failure is audited on the incident and logged. Nothing waits on it.
 */
export async function runWriteback(job: WritebackJob, deps: WritebackDeps): Promise<WritebackOutcome> {
  const { store, queue, logger } = deps;
  if (!isGraphIncidentId(job.incidentId)) return { status: 'skipped', reason: 'not a Defender incident id' };
  const pausedUntil = await store.channelPausedUntil(WRITEBACK_PAUSE);
  // A job queued for the end of the pause may start a moment early: it waits that moment out.
  if (pausedUntil > Date.now() && pausedUntil - Date.now() <= 1_000) await sleep(pausedUntil - Date.now());
  else if (pausedUntil > Date.now()) {
    await requestLater(queue, job, pausedUntil, job.retry ?? 0);
    return { status: 'deferred', untilMs: pausedUntil, reason: 'Microsoft Graph asked to wait' };
  }
  const lease = `writeback:${job.incidentId}`;
  if (!(await store.tryLock(lease, WRITEBACK_LEASE_MS))) {
    await requestWriteback(queue, job.incidentId, WRITEBACK_BUSY_MS);
    return { status: 'deferred', untilMs: Date.now() + WRITEBACK_BUSY_MS, reason: 'another run holds it' };
  }
  let outcome: WritebackOutcome;
  try {
    outcome = await writeBack(job, deps);
  } finally {
    await store.unlock(lease);
  }
  if (outcome.status === 'failed') {
    await store.appendAudit(
      auditEntry(deps, SYSTEM, 'writeback', 'failed', outcome.reason.slice(0, 500), {
        incidentId: job.incidentId,
      }),
    );
    logger.error(
      { incidentId: job.incidentId, reason: outcome.reason },
      'Defender incident status not written back: check INCIDENT_WRITEBACK and the SecurityIncident.ReadWrite.All permission',
    );
  }
  return outcome;
}

async function writeBack(job: WritebackJob, deps: WritebackDeps): Promise<WritebackOutcome> {
  const state = await deps.store.getIncident(job.incidentId);
  if (!state) return { status: 'skipped', reason: 'unknown incident' };
  const target = writebackTarget(state.actions, deps.assignTo);
  const read = await deps.writer.read(job.incidentId);
  if (!read.ok) return retryOrFail(job, deps, read);
  const patch = planWriteback(read.incident, target);
  if (!patch) return { status: 'inStep' };
  const updated = await deps.writer.update(job.incidentId, patch);
  if (!updated.ok) return retryOrFail(job, deps, updated);
  await deps.store.appendAudit(
    auditEntry(
      deps,
      SYSTEM,
      'writeback',
      'ok',
      [
        patch.customTags ? `tag ${target.tag}` : undefined,
        patch.assignedTo ? `assigned to ${patch.assignedTo}` : undefined,
      ]
        .filter(Boolean)
        .join(', '),
      { incidentId: job.incidentId },
    ),
  );
  return {
    status: 'patched',
    tag: target.tag,
    ...(patch.assignedTo ? { assignedTo: patch.assignedTo } : {}),
  };
}

async function retryOrFail(
  job: WritebackJob,
  deps: WritebackDeps,
  failure: WriteFailure,
): Promise<WritebackOutcome> {
  if (!failure.transient) return { status: 'failed', reason: failure.reason };
  const retry = job.retry ?? 0;
  if (retry >= MAX_WRITEBACK_RETRIES) {
    return { status: 'failed', reason: `${failure.reason}; gave up after ${retry + 1} tries` };
  }
  if (failure.throttled) {
    // Graph did not act on the request: every write-back waits its Retry-After, this one runs again then.
    const until = Date.now() + (failure.retryAfterMs ?? retryDelayMs(retry));
    await deps.store.pauseChannel(WRITEBACK_PAUSE, until);
    await requestLater(deps.queue, job, until, retry + 1);
    deps.logger.warn(
      { incidentId: job.incidentId, retryAfterMs: failure.retryAfterMs },
      'Microsoft Graph throttled the incident write-back; it runs again after Retry-After',
    );
    return { status: 'deferred', untilMs: until, reason: failure.reason };
  }
  const until = Date.now() + retryDelayMs(retry, failure.retryAfterMs ?? 0);
  await requestLater(deps.queue, job, until, retry + 1);
  deps.logger.warn(
    { incidentId: job.incidentId, retry: retry + 1, reason: failure.reason },
    'incident write-back failed; retrying with back-off',
  );
  return { status: 'deferred', untilMs: until, reason: failure.reason };
}
