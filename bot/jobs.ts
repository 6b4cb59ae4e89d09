import { z } from 'zod';
import type { JobContext, JobHandler, Lanes } from '../adapters/job-queue.js';
import { WEBHOOK_EVENT_TYPES } from '../core/webhook-events.js';
import { DELIVER_JOB, REMIND_POST_JOB } from './delivery.js';
import { GRAPH_POLL_JOB } from './incident-poller.js';
import { WRITEBACK_JOB } from './incident-writeback.js';
import type { Logger } from './logger.js';
import { MAINTENANCE_JOB } from './maintenance.js';
import { WEBHOOK_JOB, WEBHOOK_RELAY_JOB } from './webhooks.js';

export const EXECUTE_JOB = 'execute';
/**
 * The follower's round: a `PeriodicRound` (bot/periodic-round.ts), no queue job. The BullMQ schedule of
 * that name an earlier version left in the `follow` queue is dropped when the runtime starts its timers.
 */
export const FOLLOW_JOB = 'follow';
export const REMIND_JOB = 'remind';
export const EMAIL_JOB = 'email';

/**
 * The queue's lanes: execution never holds the slots card delivery needs, and neither holds reminders
 * or upkeep. Concurrency is per process.
 */
export const JOB_LANES: Lanes = {
  // Light lanes: an approval's execute job and its card updates cost a few Redis commands each, not ~45.
  execute: { jobs: [EXECUTE_JOB], concurrency: 20, light: { attempts: 3 } },
  deliver: {
    jobs: [DELIVER_JOB, REMIND_POST_JOB],
    // Deliveries share the event loop with the ingests they follow: a delivery takes about twice the
    // awaits of an ingest (reads, pause checks, two platform calls, the references written), so with 50
    // ingests in flight, 20 slots let the cards fall seconds behind a burst; 200 keep up with it.
    concurrency: 200,
    // A card delivery left in the BullMQ queue by an earlier version keeps its incident's group.
    light: { attempts: 10, groupOf: (name, data) => (name === DELIVER_JOB ? incidentOf(data) : undefined) },
  },
  remind: { jobs: [REMIND_JOB], concurrency: 5 },
  notify: { jobs: [EMAIL_JOB, WRITEBACK_JOB, WEBHOOK_JOB], concurrency: 5 },
  // One periodic run at a time per process; the job schedulers make it one per interval in all.
  maintenance: { jobs: [MAINTENANCE_JOB, GRAPH_POLL_JOB, WEBHOOK_RELAY_JOB], concurrency: 1 },
};

function incidentOf(data: unknown): string | undefined {
  const incidentId = (data as { incidentId?: unknown } | null)?.incidentId;
  return typeof incidentId === 'string' ? incidentId : undefined;
}

const id = z.string().min(1);

/**
 * The data each job carries, as it is read when the job starts: a job queued by an earlier version, or
 * written into Redis by hand, is checked before anything acts on it. Other keys (the trace context the
 * tracing wrapper adds) are let through.
 */
export const JOB_DATA = {
  [EXECUTE_JOB]: z.looseObject({ incidentId: id, actionId: id }),
  [REMIND_JOB]: z.looseObject({ incidentId: id, actionId: id, dueAt: z.string().optional() }),
  [EMAIL_JOB]: z.looseObject({ incidentId: id, event: id }),
  [WRITEBACK_JOB]: z.looseObject({ incidentId: id, retry: z.number().int().nonnegative().optional() }),
  [WEBHOOK_JOB]: z.looseObject({
    eventId: id,
    type: z.enum(WEBHOOK_EVENT_TYPES),
    url: id,
    incidentId: id,
    body: z.string(),
    queuedAt: z.number(),
  }),
  [DELIVER_JOB]: z.looseObject({
    incidentId: id,
    platform: z.enum(['slack', 'teams']).optional(),
    targets: z.array(z.string()).optional(),
    retry: z.number().int().nonnegative().optional(),
  }),
  // The task as it was when it fell due; only its ids are read, the task itself is read again.
  [REMIND_POST_JOB]: z.looseObject({
    task: z.looseObject({ incidentId: id, actionId: id }),
    platform: id,
  }),
} as const;

/**
 * A job handler that first parses the job's data with `schema`. Data that does not fit is logged (the
 * job's name and what did not fit, never the values, which may carry a webhook body or an address) and
 * the job is dropped: no retry could make it fit.
 */
export function parsedJob<T>(
  name: string,
  schema: z.ZodType<T>,
  logger: Logger,
  run: (data: T, context?: JobContext) => Promise<void>,
): JobHandler {
  return async (data, context) => {
    const parsed = schema.safeParse(data);
    if (parsed.success) return run(parsed.data, context);
    logger.error(
      {
        job: name,
        problems: parsed.error.issues.map((issue) => `${issue.path.join('.') || '(data)'}: ${issue.code}`),
      },
      'job dropped: its data does not have the shape this version reads (queued by another version?)',
    );
  };
}
