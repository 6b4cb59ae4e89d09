import { createHash } from 'node:crypto';
import { backoffMs } from '../adapters/backoff.js';
import type { JobQueue } from '../adapters/job-queue.js';
import type { IncidentCardView } from '../cards/view-types.js';
import { StoreUnavailableError } from '../core/errors.js';
import type { CardRefs, IncidentState, Task } from '../core/model.js';
import type { ActionStore, Clock, Notifier } from '../core/ports.js';
import type { Logger } from './logger.js';

/** Why a channel was left out of a delivery, and so how it is tried again. */
export type DeferralReason =
  /** The platform asked us to wait (429 Retry-After), here or on another replica. */
  | 'paused'
  /** The platform failed (5xx, 412, a timeout): tried again with back-off, a bounded number of times. */
  | 'failed'
  /** The delivery ran out of its time budget before reaching this channel. */
  | 'budget';

/** What one delivery run is allowed, and where it reports the channels it left for later. */
export interface DeliveryContext {
  /** Only these channels / conversations (a delivery deferred there earlier); unset: all of them. */
  targets?: readonly string[];
  /** Epoch ms after which no new platform call starts (the job must end well inside its lock). */
  deadline: number;
  /** How many times this delivery was deferred after a failure (for back-off). */
  retry: number;
  /** Leave `target` for a later delivery, at `at` (epoch ms). */
  defer(target: string, at: number, reason: DeferralReason): void;
  /** The incident's card references, read once per delivery run for every platform (unset: read them). */
  cardRefs?: () => Promise<CardRefs>;
  /**
   * The incident's card view model, built once per delivery run for every platform: the first call runs
   * `build`, later ones get its result (unset: build it).
   */
  view?: (build: () => IncidentCardView) => IncidentCardView;
  /**
   * Until when deliveries to a channel wait (`ActionStore.channelPausedUntil`), the channels of every
   * platform of the run read at once (unset: read each from the store).
   */
  pausedUntil?: (channel: string) => Promise<number>;
}

/** Posts an incident's card on one platform, or updates the one already posted. */
export interface CardPublisher {
  readonly platform: 'slack' | 'teams';
  /**
   * First call posts (once), later calls update the same message in place. A channel that is paused or
   * failed is reported with `context.defer` instead of waited for.
   */
  deliver(state: IncidentState, context: DeliveryContext): Promise<void>;
  /** Tell the channel a customer task is overdue. */
  remind(task: Task, state: IncidentState): Promise<void>;
  /** The pause names (`pauseChannel`) a delivery of a card with these references checks. */
  pauseNames?(refs: CardRefs): Promise<string[]>;
}

/** The job that delivers one incident's card to one platform. */
export const DELIVER_JOB = 'deliver';
export const REMIND_POST_JOB = 'remind-post';

export interface DeliverJob {
  incidentId: string;
  /** One platform (a delivery deferred or busy there); unset: every platform, in one job. */
  platform?: 'slack' | 'teams';
  /** A delivery deferred for these channels only (by a pause, a failure or the time budget). */
  targets?: string[];
  /** Deferrals after failures so far. */
  retry?: number;
}

/** Changes to an incident already posted wait this long, so a burst of them becomes one update. */
export const UPDATE_GATHER_MS = 250;
/** A delivery that finds another one of the same card running tries again after this long. */
export const BUSY_RETRY_MS = 200;
/**
 * The per-card lease of a delivery run. Shorter than the queue's job lock (30 s), longer than a run
 * can take: no new platform call starts after DELIVERY_BUDGET_MS and each is bounded by
 * PLATFORM_CALL_TIMEOUT_MS.
 */
export const DELIVERY_LEASE_MS = 25_000;
export const DELIVERY_BUDGET_MS = 12_000;
export const PLATFORM_CALL_TIMEOUT_MS = 8_000;
/** Deferrals after failures before a delivery is given up (about 8 minutes of back-off). */
export const MAX_DELIVERY_RETRIES = 8;

/** How long a posted card's id is retried into the store before the job is left to the queue's retry. */
export const RECORD_RETRY_MS = 8_000;

/**
 * Store what identifies a card just posted (Slack's ts, Teams' activity id). The platforms have no
 * idempotency key for a post, so a card posted and not recorded would be posted again: try for a while
 * (Redis may be restarting), then `keep` it for this process's next delivery of the incident and fail.
 */
export async function recordPosted(
  write: () => Promise<void>,
  keep: () => void,
  retryMs = RECORD_RETRY_MS,
): Promise<void> {
  const deadline = Date.now() + retryMs;
  for (;;) {
    try {
      await write();
      return;
    } catch (error) {
      if (!(error instanceof StoreUnavailableError) || Date.now() >= deadline) {
        keep();
        throw error;
      }
      // The global timer (not node:timers/promises), so that tests can run this on fake time.
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/** The coalescing key of one incident's card on one platform (`*`: on every platform). */
export function cardKey(platform: string | undefined, incidentId: string): string {
  return `deliver|${platform ?? '*'}|${incidentId}`;
}

/** Back-off before trying a failed channel again: 1 s doubling to 60 s, with jitter, never below `floorMs`. */
export function retryDelayMs(retry: number, floorMs = 0, random: () => number = Math.random): number {
  const ceiling = backoffMs(1_000, retry, 60_000);
  return Math.max(floorMs, Math.round(ceiling * (0.5 + random() / 2)));
}

/**
 * Queue a delivery of one card, coalesced: while one waits, this adds nothing (it renders the latest
 * state when it runs); while one runs, one more is queued after it.
 */
export async function requestDelivery(queue: JobQueue, job: DeliverJob, delayMs: number): Promise<void> {
  const data: DeliverJob = {
    incidentId: job.incidentId,
    ...(job.platform ? { platform: job.platform } : {}),
  };
  await queue.add(DELIVER_JOB, data, {
    coalesce: cardKey(job.platform, job.incidentId),
    group: job.incidentId,
    ...(delayMs > 0 ? { delayMs } : {}),
    attempts: 10,
  });
}

/**
 * Turns "this incident changed" into one durable delivery job for every platform (one job, one read of
 * the incident; each platform's card under its own lease), coalesced per incident: a new incident's
 * card goes at once; changes to a known incident are gathered for UPDATE_GATHER_MS into one update; a
 * change during a running delivery leads to one more delivery after it.
 */
export class DeliveryNotifier implements Notifier {
  private readonly listeners = new Set<(incidentId: string) => void>();
  private readonly followers: ((incidentId: string) => Promise<void>)[] = [];

  constructor(
    private readonly queue: JobQueue,
    private readonly publishers: CardPublisher[],
    private readonly clock: Clock,
  ) {}

  /** Local listeners (the preview page) hear about every change at once. */
  onChange(listener: (incidentId: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Durable work that follows every change as the cards do (the Graph incident write-back). */
  follow(follower: (incidentId: string) => Promise<void>): void {
    this.followers.push(follower);
  }

  async incidentChanged(incidentId: string, change: { created?: boolean } = {}): Promise<void> {
    for (const listener of this.listeners) listener(incidentId);
    // The followers' jobs and the card delivery are queued together: one round trip's wait, not several.
    await Promise.all([
      ...this.followers.map((follower) => follower(incidentId)),
      this.publishers.length === 0
        ? undefined
        : requestDelivery(this.queue, { incidentId }, change.created ? 0 : UPDATE_GATHER_MS),
    ]);
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

/** What a delivery run needs. */
export interface DeliveryDeps {
  store: ActionStore;
  queue: JobQueue;
  publishers: CardPublisher[];
  logger: Logger;
  /**
   * The queue runs one delivery of an incident at a time across processes (a light lane): no lease of
   * our own is taken.
   */
  exclusive?: boolean;
  /** Aborts when the run's lease in the queue ended: no platform call starts after that. */
  signal?: AbortSignal;
}

/**
 * Run one delivery job: on each of its platforms, under that card's lease (one run at a time, so a card
 * is never posted twice), render the latest state and send it. The incident is read once, after the
 * first lease is taken. Channels the platform paused or failed are queued again for when they may be
 * tried, without waiting in this job; a platform whose card is busy gets a delivery of its own after it.
 */
export async function runDelivery(job: DeliverJob, deps: DeliveryDeps): Promise<void> {
  const targets = job.platform ? deps.publishers.filter((p) => p.platform === job.platform) : deps.publishers;
  let refs: Promise<CardRefs> | undefined;
  const readRefs = () => {
    refs ??= deps.store.getCardRefs(job.incidentId);
    return refs;
  };
  let reading: Promise<IncidentState | null> | undefined;
  const read = () => {
    if (!reading) {
      reading = deps.store.getIncident(job.incidentId);
      // The card references go in the same round trip when nothing else can change them meanwhile
      // (their failure is reported where they are awaited).
      if (deps.exclusive) readRefs().catch(() => {});
    }
    return reading;
  };
  const cardRefs = async () => structuredClone(await readRefs());
  let view: IncidentCardView | undefined;
  const sharedView = (build: () => IncidentCardView) => {
    view ??= build();
    return view;
  };
  // The pauses of every platform's channels in one read, once the card references say which they are.
  let pauses: Promise<Map<string, number>> | undefined;
  const pausedUntil = async (channel: string) => {
    pauses ??= readRefs().then(async (refs) => {
      const names = [...new Set((await Promise.all(targets.map((p) => p.pauseNames?.(refs) ?? []))).flat())];
      const until = await deps.store.channelsPausedUntil(names);
      return new Map(names.map((name, i) => [name, until[i] ?? 0]));
    });
    return (await pauses).get(channel) ?? deps.store.channelPausedUntil(channel);
  };
  const shared = { cardRefs, sharedView, ...(deps.exclusive ? { pausedUntil } : {}) };
  // Platforms side by side: a slow platform does not hold the other's card.
  const runs = await Promise.allSettled(
    targets.map((publisher) =>
      deliverOn(publisher, { ...job, platform: publisher.platform }, read, shared, deps),
    ),
  );
  const failed = runs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

async function deliverOn(
  publisher: CardPublisher,
  job: DeliverJob,
  read: () => Promise<IncidentState | null>,
  shared: {
    cardRefs: () => Promise<CardRefs>;
    sharedView: NonNullable<DeliveryContext['view']>;
    pausedUntil?: DeliveryContext['pausedUntil'];
  },
  deps: DeliveryDeps,
): Promise<void> {
  const { store, queue, logger } = deps;
  const lease = `deliver:${publisher.platform}:${job.incidentId}`;
  if (!deps.exclusive && !(await store.tryLock(lease, DELIVERY_LEASE_MS))) {
    // Another run of this card holds the lease: deliver again once it is done, without waiting here.
    if (job.targets) await addDeferred(queue, job, Date.now() + BUSY_RETRY_MS, job.targets, job.retry ?? 0);
    else await requestDelivery(queue, job, BUSY_RETRY_MS);
    return;
  }
  const deferred: { target: string; at: number; reason: DeferralReason }[] = [];
  try {
    const state = await read();
    deps.signal?.throwIfAborted();
    if (!state) {
      logger.warn({ incidentId: job.incidentId }, 'card delivery for an unknown incident skipped');
      return;
    }
    await publisher.deliver(state, {
      ...(job.targets ? { targets: job.targets } : {}),
      deadline: Date.now() + DELIVERY_BUDGET_MS,
      retry: job.retry ?? 0,
      defer: (target, at, reason) => deferred.push({ target, at, reason }),
      // Read once for both platforms only when no other run can change them meanwhile.
      ...(deps.exclusive ? { cardRefs: shared.cardRefs } : {}),
      ...(shared.pausedUntil ? { pausedUntil: shared.pausedUntil } : {}),
      // Both platforms render the same state read once: one view model for both.
      view: shared.sharedView,
    });
  } finally {
    if (!deps.exclusive) await store.unlock(lease);
  }
  deps.signal?.throwIfAborted();
  await deferDeliveries(deps, job, deferred);
}

/** Queue the deferred channels again: one job per time and kind, so a pause seen by many runs is one job. */
async function deferDeliveries(
  deps: DeliveryDeps,
  job: DeliverJob,
  deferred: { target: string; at: number; reason: DeferralReason }[],
): Promise<void> {
  const groups = new Map<string, { at: number; failed: boolean; targets: string[] }>();
  for (const d of deferred) {
    const failed = d.reason === 'failed';
    const key = `${d.at}|${failed}`;
    const group = groups.get(key) ?? { at: d.at, failed, targets: [] };
    group.targets.push(d.target);
    groups.set(key, group);
  }
  for (const group of groups.values()) {
    const retry = (job.retry ?? 0) + (group.failed ? 1 : 0);
    if (retry > MAX_DELIVERY_RETRIES) {
      deps.logger.error(
        { incidentId: job.incidentId, platform: job.platform, targets: group.targets, retries: retry - 1 },
        'card not delivered there after repeated platform failures; the next change of the incident tries again',
      );
      continue;
    }
    await addDeferred(deps.queue, job, group.at, group.targets, retry);
  }
}

async function addDeferred(
  queue: JobQueue,
  job: DeliverJob,
  at: number,
  targets: string[],
  retry: number,
): Promise<void> {
  const sorted = [...targets].sort();
  const which = createHash('sha256').update(sorted.join('\n')).digest('hex').slice(0, 16);
  const data: DeliverJob = { incidentId: job.incidentId, platform: job.platform, targets: sorted, retry };
  await queue.add(DELIVER_JOB, data, {
    // The same channels at the same time (a pause several runs ran into) are one job.
    id: `deliver-later|${job.platform}|${job.incidentId}|${at}|${which}|${retry}`,
    delayMs: Math.max(0, at - Date.now()),
    attempts: 10,
    replaceFinished: true,
    group: job.incidentId,
  });
}
