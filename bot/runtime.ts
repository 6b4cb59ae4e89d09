import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import type { JobContext, JobQueue } from '../adapters/job-queue.js';
import { emailCustomerTasks } from '../core/email-customer-tasks.js';
import { executeAction } from '../core/execute-action.js';
import { followActions } from '../core/follow-actions.js';
import type { Clock, CoreDeps, CoreJob, IngestRules, JobScheduler } from '../core/ports.js';
import { remindTask } from '../core/remind-task.js';
import { taskOf } from '../core/tasks.js';
import { type Adapters, givenAdapters, type RuntimeParts } from './adapters.js';
import type { Config } from './config.js';
import { DELIVER_JOB, DeliveryNotifier, REMIND_POST_JOB, runDelivery } from './delivery.js';
import { GRAPH_POLL_JOB } from './incident-poller.js';
import { requestWriteback, runWriteback, WRITEBACK_JOB } from './incident-writeback.js';
import { EMAIL_JOB, EXECUTE_JOB, FOLLOW_JOB, JOB_DATA, parsedJob, REMIND_JOB } from './jobs.js';
import type { Logger } from './logger.js';
import { MAINTENANCE_EVERY_MS, MAINTENANCE_JOB, Maintenance } from './maintenance.js';
import { Metrics } from './metrics.js';
import { PeriodicRound } from './periodic-round.js';
import { traceExecutor, traceQueue } from './tracing.js';
import {
  deliverWebhook,
  WEBHOOK_JOB,
  WEBHOOK_RELAY_EVERY_MS,
  WEBHOOK_RELAY_JOB,
  WebhookEvents,
  WebhookRelay,
  WebhookRetryError,
} from './webhooks.js';

/** Everything one bot process runs with, built once from the configuration. */
export interface Runtime
  extends Pick<
    Adapters,
    'store' | 'storeKind' | 'queue' | 'executor' | 'directory' | 'clock' | 'publishers'
  > {
  config: Config;
  logger: Logger;
  notifier: DeliveryNotifier;
  deps: CoreDeps;
  metrics: Metrics;
  /**
   * Periodic work: `run` as job `name` every `everyMs`, once per interval across all replicas (a queue
   * job scheduler, in the maintenance lane). Register before `queue.start()`; `startTimers()` after it.
   */
  every(name: string, everyMs: number, run: () => Promise<unknown>): void;
  /**
   * Hands the periodic work registered with `every` to the queue, and starts the follower's rounds. Call
   * after `queue.start()`.
   */
  startTimers(): Promise<void>;
  close(): Promise<void>;
}

export type { RuntimeParts } from './adapters.js';
export { EMAIL_JOB, EXECUTE_JOB, FOLLOW_JOB, JOB_LANES, REMIND_JOB } from './jobs.js';

/**
 * The job id of a core job: its kind and each id part percent-encoded, joined by '/' (which no encoded
 * part contains), so `2025-1`/`act-1` and `2025`/`1-act-1` never share an id.
 */
export function jobIdOf(job: CoreJob): string {
  if (job.kind === 'email')
    return [job.kind, job.incidentId, job.event].map((p) => encodeURIComponent(p)).join('/');
  const parts = [job.kind, job.incidentId, job.actionId];
  if (job.kind === 'execute' && job.retry !== undefined) parts.push(`v${job.retry}`);
  if (job.kind === 'remind') parts.push(job.dueAt);
  return parts.map((p) => encodeURIComponent(p)).join('/');
}

/** The lane that ran the follower's rounds as a scheduled BullMQ job before they were claimed rounds. */
export const EARLIER_FOLLOW_LANE = 'follow';

/** Maps the core's job requests onto the queue, keyed so the same work enqueued twice runs once. */
class QueueScheduler implements JobScheduler {
  constructor(
    private readonly queue: JobQueue,
    private readonly clock: Clock,
  ) {}

  async schedule(job: CoreJob): Promise<void> {
    if (job.kind === 'execute') {
      await this.queue.add(EXECUTE_JOB, executeData(job), {
        id: jobIdOf(job),
        attempts: 3,
        ...(job.delayMs ? { delayMs: job.delayMs } : {}),
        ...(job.rerun ? { replaceFinished: true } : {}),
      });
      return;
    }
    if (job.kind === 'email') {
      // Attempts beyond the first only for a store fault: the mailer spends its own retries on Graph.
      await this.queue.add(EMAIL_JOB, job, { id: jobIdOf(job), attempts: 3 });
      return;
    }
    const delayMs = Math.max(0, new Date(job.dueAt).getTime() - this.clock.now().getTime());
    await this.queue.add(REMIND_JOB, job, { id: jobIdOf(job), delayMs });
  }

  scheduled(job: CoreJob): Promise<boolean> {
    if (job.kind === 'execute') return this.queue.has(EXECUTE_JOB, jobIdOf(job), executeData(job));
    return this.queue.has(job.kind === 'email' ? EMAIL_JOB : REMIND_JOB, jobIdOf(job), job);
  }
}

/** The data of an execute job (the same whenever it is added or looked for). */
function executeData(job: CoreJob & { kind: 'execute' }) {
  return { kind: 'execute', incidentId: job.incidentId, actionId: job.actionId };
}

/** The ingest rules of the configuration: the tenant of DEFENDER_TENANT_ID, PUBLIC_URL's host for portal links. */
export function ingestRules(config: Config): IngestRules {
  const tenantId = config.defender?.tenantId;
  const publicHost = config.publicUrl ? new URL(config.publicUrl).hostname : undefined;
  return { ...(tenantId ? { tenantId } : {}), ...(publicHost ? { portalHosts: [publicHost] } : {}) };
}

/**
 * Wire the core to its adapters and register the job handlers. Call `queue.start()` after. The adapters
 * are those `chooseAdapters` chose (bot/compose.ts), or the parts given with what needs no configuration
 * for the rest (tests); closing the runtime closes them.
 */
export function assembleRuntime(config: Config, logger: Logger, parts: RuntimeParts | Adapters): Runtime {
  const adapters = 'close' in parts ? parts : givenAdapters(logger, parts);
  const { store, clock, directory, publishers } = adapters;
  const executor = traceExecutor(config, adapters.executor);
  const queue = traceQueue(config, adapters.queue);
  const notifier = new DeliveryNotifier(queue, publishers, clock);
  const metrics = new Metrics();
  const webhooks = config.webhooks;
  const events =
    webhooks.length > 0 ? new WebhookEvents({ store, queue, clock, logger, metrics, webhooks }) : undefined;
  const deps: CoreDeps = {
    store,
    directory,
    executor,
    clock,
    notifier,
    jobs: new QueueScheduler(queue, clock),
    policy: config.policy,
    ingest: ingestRules(config),
    ...(adapters.mailer ? { mailer: adapters.mailer } : {}),
    ...(events ? { events } : {}),
  };

  const track =
    (name: string, run: (data: unknown, context?: JobContext) => Promise<void>) =>
    async (data: unknown, context?: JobContext) => {
      try {
        await run(data, context);
        metrics.jobs.inc({ name, outcome: 'ok' });
      } catch (error) {
        metrics.jobs.inc({ name, outcome: 'error' });
        throw error;
      }
    };
  /** Register a handler of job `name` whose data is parsed with its schema when the job starts. */
  const handle = <T>(
    name: string,
    schema: z.ZodType<T>,
    run: (data: T, context?: JobContext) => Promise<void>,
  ) => queue.process(name, track(name, parsedJob(name, schema, logger, run)));

  handle(EXECUTE_JOB, JOB_DATA[EXECUTE_JOB], async ({ incidentId, actionId }) => {
    // A token per run: a stalled copy of this job, run again elsewhere, holds another one.
    const result = await executeAction(deps, { incidentId, actionId }, { token: randomUUID() });
    logger.info(
      {
        incidentId,
        actionId,
        result: result.status === 'done' ? result.action.state : result.reason,
        ...(result.status === 'done' && result.action.progress ? { progress: result.action.progress } : {}),
      },
      'execute job finished',
    );
  });
  handle(REMIND_JOB, JOB_DATA[REMIND_JOB], async ({ incidentId, actionId, dueAt }) => {
    await remindTask(deps, { incidentId, actionId }, dueAt);
  });
  handle(EMAIL_JOB, JOB_DATA[EMAIL_JOB], async ({ incidentId, event }) => {
    const result = await emailCustomerTasks(deps, { incidentId, event });
    if (result.status === 'failed') {
      // Audited on the incident already; the card is not held back by it.
      logger.error(
        { incidentId, event, reason: result.reason },
        'customer task email not sent: check MAIL_SENDER, the Mail.Send permission and the policy addresses',
      );
    } else logger.info({ incidentId, event, ...result }, 'customer task email job finished');
  });
  // The Graph incident follows the managed status (INCIDENT_WRITEBACK); a job left by an earlier
  // configuration does nothing while it is off.
  const writer = config.incidentWriteback ? adapters.incidentWriter : undefined;
  handle(WRITEBACK_JOB, JOB_DATA[WRITEBACK_JOB], async (job) => {
    if (!writer) return;
    const outcome = await runWriteback(job, {
      store,
      queue,
      writer,
      clock,
      logger,
      ...(config.policy.notifications?.assignTo ? { assignTo: config.policy.notifications.assignTo } : {}),
    });
    logger.info({ incidentId: job.incidentId, ...outcome }, 'incident write-back job finished');
  });
  if (writer) {
    notifier.follow(async (incidentId) => {
      try {
        await requestWriteback(queue, incidentId);
      } catch (error) {
        // The write-back never holds up a decision or a card; the next change asks for it again.
        logger.warn({ incidentId, err: (error as Error).message }, 'incident write-back not queued');
      }
    });
  }
  // Always served: a delivery queued under an earlier policy is refused (and audited) if its address is
  // not a webhook of this one.
  handle(WEBHOOK_JOB, JOB_DATA[WEBHOOK_JOB], async (job) => {
    try {
      const outcome = await deliverWebhook(job, { store, clock, webhooks });
      metrics.webhookDeliveries.inc({ outcome: outcome.status });
      const details = { eventId: job.eventId, type: job.type, incidentId: job.incidentId, ...outcome };
      if (outcome.status === 'delivered') logger.info(details, 'webhook delivered');
      else
        logger.error(
          details,
          'webhook not delivered: audited on the incident; check the receiver and the policy',
        );
    } catch (error) {
      if (error instanceof WebhookRetryError) metrics.webhookDeliveries.inc({ outcome: 'retried' });
      throw error;
    }
  });
  handle(DELIVER_JOB, JOB_DATA[DELIVER_JOB], (job, context) =>
    runDelivery(job, {
      store,
      queue,
      publishers,
      logger,
      exclusive: queue.exclusive?.(DELIVER_JOB) ?? false,
      ...(context?.signal ? { signal: context.signal } : {}),
    }),
  );
  handle(REMIND_POST_JOB, JOB_DATA[REMIND_POST_JOB], async ({ task, platform }) => {
    const state = await store.getIncident(task.incidentId);
    const publisher = publishers.find((p) => p.platform === platform);
    const action = state?.actions.find((a) => a.id === task.actionId);
    const current = action ? taskOf(action) : null;
    if (state && publisher && current) await publisher.remind(current, state);
  });

  const timers = new Map<string, number>();
  const every = (name: string, everyMs: number, run: () => Promise<unknown>) => {
    timers.set(name, everyMs);
    queue.process(
      name,
      track(name, async () => {
        try {
          await run();
        } catch (error) {
          // The next interval runs it again; a failure here is not worth a retry of its own.
          logger.warn(
            { err: (error as Error).message, job: name },
            'periodic job failed; runs again next interval',
          );
        }
      }),
    );
  };
  // A Graph poll schedule left by an earlier configuration polls nothing until GRAPH_POLL_SECONDS is set.
  queue.process(GRAPH_POLL_JOB, async () => {});

  // Submitted actions are followed in batches, one round per interval across every replica: a round
  // every few seconds would cost a queue job's scheduling each time, where its claim costs one command.
  const followMs = config.execution.followSeconds * 1000;
  const follow = track(FOLLOW_JOB, async () => {
    const report = await followActions(deps, { roundMs: followMs });
    if (report.changed + report.ended > 0) logger.info(report, 'followed submitted actions');
  });
  const follower = new PeriodicRound({
    name: FOLLOW_JOB,
    everyMs: followMs,
    store,
    logger,
    run: () => follow(undefined),
  });

  const runtime: Runtime = {
    config,
    logger,
    store,
    storeKind: adapters.storeKind,
    queue,
    executor,
    directory,
    clock,
    notifier,
    publishers,
    deps,
    metrics,
    every,
    async startTimers() {
      for (const [name, everyMs] of timers) await queue.every(name, everyMs);
      // The follower's BullMQ schedule of earlier versions, in a lane of its own that no worker reads now.
      await queue.dropSchedule?.(EARLIER_FOLLOW_LANE, FOLLOW_JOB);
      follower.start();
    },
    async close() {
      await follower.stop();
      await adapters.close();
    },
  };
  const maintenance = new Maintenance(runtime);
  every(MAINTENANCE_JOB, MAINTENANCE_EVERY_MS, () => maintenance.runOnce());
  // Webhook events whose writer could not queue them (it died, or the queue was down) are relayed from
  // the audit feed, one run per interval across every replica.
  if (events) {
    const relay = new WebhookRelay({ store, logger, events });
    every(WEBHOOK_RELAY_JOB, WEBHOOK_RELAY_EVERY_MS, async () => {
      const { queued } = await relay.runOnce();
      if (queued > 0) logger.info({ queued }, 'webhook relay queued deliveries from the audit feed');
    });
  }
  return runtime;
}
