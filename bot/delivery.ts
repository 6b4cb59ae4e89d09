import type { JobQueue } from '../adapters/job-queue.js';
import type { IncidentState, Task } from '../core/model.js';
import type { ActionStore, Clock, Notifier } from '../core/ports.js';
import type { Logger } from './logger.js';

/** Posts an incident's card on one platform, or updates the one already posted. */
export interface CardPublisher {
  readonly platform: 'slack' | 'teams';
  /** First call posts (once), later calls update the same message in place. */
  deliver(state: IncidentState): Promise<void>;
  /** Tell the channel a customer task is overdue. */
  remind(task: Task, state: IncidentState): Promise<void>;
}

/** The job that delivers one incident's card to one platform. */
export const DELIVER_JOB = 'deliver';
export const REMIND_POST_JOB = 'remind-post';

export interface DeliverJob {
  incidentId: string;
  platform: 'slack' | 'teams';
}

/**
 * Turns "this incident changed" into durable delivery jobs, coalesced per incident and platform: every
 * change within one window (default 1 s) shares one job, which renders the latest state when it runs.
 */
export class DeliveryNotifier implements Notifier {
  private readonly listeners = new Set<(incidentId: string) => void>();

  constructor(
    private readonly queue: JobQueue,
    private readonly publishers: CardPublisher[],
    private readonly clock: Clock,
    private readonly windowMs = 1_000,
  ) {}

  /** Local listeners (the preview page) hear about every change at once. */
  onChange(listener: (incidentId: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async incidentChanged(incidentId: string): Promise<void> {
    for (const listener of this.listeners) listener(incidentId);
    const now = this.clock.now().getTime();
    const bucket = Math.floor(now / this.windowMs);
    const delayMs = (bucket + 1) * this.windowMs - now;
    await Promise.all(
      this.publishers.map((publisher) => {
        const data: DeliverJob = { incidentId, platform: publisher.platform };
        return this.queue.add(DELIVER_JOB, data, {
          id: `deliver-${publisher.platform}-${incidentId}-${bucket}`,
          delayMs,
          attempts: 10,
        });
      }),
    );
  }

  async taskOverdue(task: Task): Promise<void> {
    for (const publisher of this.publishers) {
      await this.queue.add(
        REMIND_POST_JOB,
        { task, platform: publisher.platform },
        {
          id: `remind-post-${publisher.platform}-${task.id}-${Math.floor(this.clock.now().getTime() / 60_000)}`,
        },
      );
    }
  }
}

/** Thrown by a delivery that must wait for another one (the lease is held): the queue retries it. */
export class DeliveryBusyError extends Error {}

/**
 * Run one delivery job: under a per-incident, per-platform lease so a card is never posted twice, render
 * and send the latest state.
 */
export async function runDelivery(
  job: DeliverJob,
  store: ActionStore,
  publishers: CardPublisher[],
  logger: Logger,
): Promise<void> {
  const publisher = publishers.find((p) => p.platform === job.platform);
  if (!publisher) return;
  const lease = `deliver:${job.platform}:${job.incidentId}`;
  if (!(await store.tryLock(lease, 60_000)))
    throw new DeliveryBusyError(`delivery of ${job.incidentId} to ${job.platform} is busy`);
  try {
    const state = await store.getIncident(job.incidentId);
    if (!state) {
      logger.warn({ incidentId: job.incidentId }, 'card delivery for an unknown incident skipped');
      return;
    }
    await publisher.deliver(state);
  } finally {
    await store.unlock(lease);
  }
}
