import { type Job, type JobsOptions, Queue, Worker } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import { MdrError } from '../core/errors.js';
import { backoffMs } from './backoff.js';
import {
  DEFAULT_LANE,
  type JobHandler,
  type JobOptions,
  type JobQueue,
  type Lanes,
  laneOf,
} from './job-queue.js';
import type { QueueLogger } from './local-queue.js';
import {
  asStoreUnavailable,
  createRedisCluster,
  createRedisConnection,
  waitUntilReady,
} from './redis-connection.js';
import { RedisWorkLane } from './redis-work-lane.js';

/** Errors of the connection itself, already reported once per outage. */
function isConnectionError(err: Error): boolean {
  return /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Connection is closed|Stream isn't writeable/.test(
    err.message,
  );
}

/** Where and how the BullMQ queue runs. */
export interface BullMqQueueOptions {
  /** The bot's Redis (REDIS_URL). The queue opens its own connections: never the store's. */
  url: string;
  /** `REDIS_URL` names a seed node of a Redis Cluster (REDIS_CLUSTER=true). */
  cluster?: boolean;
  /** The bot's key prefix (REDIS_KEY_PREFIX); BullMQ keys go under `<prefix>{bull}:`. */
  keyPrefix?: string;
  /** Lanes (one BullMQ queue each, named after the lane); job names no lane lists run in `jobs`. */
  lanes?: Lanes;
  logger?: QueueLogger;
  /** Jobs one process runs at once in the default lane. */
  concurrency?: number;
  /** First retry delay; doubled on each further attempt. */
  backoffMs?: number;
  /** A running job's lock lasts this long unless renewed; a dead worker's job is taken over after it. */
  lockDurationMs?: number;
  /** How often a worker looks for jobs whose worker died. */
  stalledIntervalMs?: number;
  /** How many times a job may be found abandoned before it is failed for good. */
  maxStalledCount?: number;
  /** How long completed job ids are kept (and so the same id is refused). */
  keepCompletedSeconds?: number;
}

/** Backoff type of jobs with `maxBackoffMs`: `capped-exponential:<max ms>`. */
const CAPPED = 'capped-exponential:';

/** Exponential backoff that stops growing at the cap named in its type (BullMQ's custom strategy). */
function cappedBackoff(
  attemptsMade: number,
  type?: string,
  _err?: Error,
  job?: { opts: JobsOptions },
): number {
  const backoff = job?.opts.backoff;
  const delay = typeof backoff === 'object' ? (backoff.delay ?? 1_000) : 1_000;
  const cap = type?.startsWith(CAPPED) ? Number(type.slice(CAPPED.length)) : Number.POSITIVE_INFINITY;
  return Math.round(backoffMs(delay, attemptsMade - 1, Number.isFinite(cap) ? cap : undefined));
}

/** Job states after which the id is free to run again (`unknown`: no such job, or removed). */
const FINISHED = new Set(['completed', 'failed', 'unknown']);
const FINISHED_JOB = new Set(['completed', 'failed']);

const consoleLogger: QueueLogger = {
  error: (details, message) => console.error(message, details),
  warn: (details, message) => console.warn(message, details),
};

/**
 * BullMQ refuses ':' and integer-looking custom ids; this maps any id to an accepted one, one-to-one
 * (escape '%' and ':' percent-style, and start with a letter).
 */
export function bullJobId(id: string): string {
  return `j${id.replace(/%/g, '%25').replace(/:/g, '%3A')}`;
}

/** The id a job was added with, from its BullMQ id (`bullJobId`); an id not made by it is kept as is. */
export function fromBullJobId(jobId: string): string {
  if (!jobId.startsWith('j')) return jobId;
  return jobId.slice(1).replace(/%3A/g, ':').replace(/%25/g, '%');
}

/**
 * Durable jobs on BullMQ: one Queue and one Worker per lane and process, every process on the same Redis
 * and prefix sharing the work. The same id is added once; attempts back off exponentially; delayed jobs
 * wait in Redis; a job whose process died is taken over by another worker once its lock runs out.
 */
export class BullMqQueue implements JobQueue {
  private readonly handlers = new Map<string, JobHandler>();
  private readonly queues = new Map<string, Queue>();
  private readonly connections: (Redis | Cluster)[] = [];
  private readonly queueConnection: Redis | Cluster;
  private readonly workers: Worker[] = [];
  /** Light lanes (jobs in a sorted set, not BullMQ), by lane name, opened on first use. */
  private readonly light = new Map<string, RedisWorkLane>();
  private lightConnection: Redis | Cluster | undefined;
  /** The light lanes' notifications (subscribed by the lanes this process runs; connects on first use). */
  private lightSubscriber: Redis | Cluster | undefined;
  private readonly logger: QueueLogger;
  private readonly prefix: string;
  private readonly lanes: Lanes;
  private readonly backoffMs: number;
  private readonly keepCompletedSeconds: number;

  constructor(private readonly options: BullMqQueueOptions) {
    this.logger = options.logger ?? consoleLogger;
    // One hash tag for all of BullMQ's keys, so its multi-key scripts also run on Redis Cluster.
    this.prefix = `${options.keyPrefix ?? 'mdr:'}{bull}`;
    this.lanes = options.lanes ?? {};
    this.backoffMs = options.backoffMs ?? 1_000;
    this.keepCompletedSeconds = options.keepCompletedSeconds ?? 7 * 24 * 3_600;
    this.queueConnection = this.connect('queue');
  }

  /** Fails with StoreUnavailableError, at once or within ~0.5 s, while Redis is away (BullMQ would wait). */
  async add(name: string, data: unknown, options: JobOptions = {}): Promise<void> {
    const light = this.lightLaneOf(name);
    if (light) return light.add(name, data, options);
    try {
      await waitUntilReady(this.queueConnection);
      await this.addNow(name, data, options);
    } catch (error) {
      throw asStoreUnavailable(error);
    }
  }

  async has(name: string, id: string, data?: unknown): Promise<boolean> {
    const light = this.lightLaneOf(name);
    if (light) return light.has(name, id, data);
    try {
      await waitUntilReady(this.queueConnection);
      const state = await this.queueOf(name).getJobState(bullJobId(id));
      return !FINISHED.has(state);
    } catch (error) {
      throw asStoreUnavailable(error);
    }
  }

  async every(name: string, everyMs: number, data: unknown = {}): Promise<void> {
    if (this.lightLaneOf(name))
      throw new MdrError('internal', `job "${name}" runs in a light lane, which has no \`every\``);
    try {
      await waitUntilReady(this.queueConnection);
      // A schedule an earlier version kept in another lane would run there too: one lane only.
      const lane = laneOf(this.lanes, name);
      const others = [...new Set([DEFAULT_LANE, ...Object.keys(this.lanes)])].filter(
        (other) => other !== lane,
      );
      await Promise.all(others.map((other) => this.queueByLane(other).removeJobScheduler(`every-${name}`)));
      await this.queueOf(name).upsertJobScheduler(
        `every-${name}`,
        { every: Math.max(1, Math.round(everyMs)) },
        {
          name,
          data,
          opts: {
            attempts: 1,
            removeOnComplete: { count: 10 },
            removeOnFail: { count: 100 },
          },
        },
      );
    } catch (error) {
      throw asStoreUnavailable(error);
    }
  }

  async dropSchedule(lane: string, name: string): Promise<void> {
    try {
      await waitUntilReady(this.queueConnection);
      const queue = this.queueByLane(lane);
      const key = `every-${name}`;
      await queue.removeJobScheduler(key);
      // BullMQ leaves the run the schedule had already queued.
      for (const job of await queue.getJobs(['delayed', 'wait', 'prioritized'])) {
        if (job?.repeatJobKey === key) await job.remove();
      }
    } catch (error) {
      throw asStoreUnavailable(error);
    }
  }

  private async addNow(name: string, data: unknown, options: JobOptions): Promise<void> {
    const queue = this.queueOf(name);
    const jobId = options.id !== undefined ? bullJobId(options.id) : undefined;
    if (jobId !== undefined && options.replaceFinished) {
      // A finished job keeps its id for `keepCompletedSeconds`: remove it so the id can run again.
      if (FINISHED_JOB.has(await queue.getJobState(jobId))) await queue.remove(jobId);
    }
    await queue.add(name, data, {
      ...(jobId !== undefined ? { jobId } : {}),
      ...(options.delayMs ? { delay: Math.max(0, Math.round(options.delayMs)) } : {}),
      // BullMQ's deduplication keeping the last add made while the job runs.
      ...(options.coalesce !== undefined
        ? { deduplication: { id: options.coalesce, keepLastIfActive: true } }
        : {}),
      attempts: Math.max(1, options.attempts ?? 5),
      backoff:
        options.maxBackoffMs !== undefined
          ? { type: `${CAPPED}${Math.max(0, Math.round(options.maxBackoffMs))}`, delay: this.backoffMs }
          : { type: 'exponential', delay: this.backoffMs },
      removeOnComplete: { age: this.keepCompletedSeconds },
      removeOnFail: { age: 4 * this.keepCompletedSeconds },
    });
  }

  exclusive(name: string): boolean {
    return this.lanes[laneOf(this.lanes, name)]?.light !== undefined;
  }

  process(name: string, handler: JobHandler): void {
    this.handlers.set(name, handler);
  }

  /**
   * Starts this process's workers: one per lane that runs a registered job, and one on the default lane
   * (it also drains jobs queued before lanes existed). A producer-only process (no handlers) starts none.
   */
  async start(): Promise<void> {
    if (this.workers.length > 0 || this.handlers.size === 0) return;
    const lanes = new Set<string>([DEFAULT_LANE]);
    for (const name of this.handlers.keys()) lanes.add(laneOf(this.lanes, name));
    for (const lane of lanes) {
      const light = this.lightLaneOf(lane, true);
      if (light) {
        await this.moveEarlierJobs(lane, light);
        light.start();
        continue;
      }
      const concurrency =
        lane === DEFAULT_LANE ? (this.options.concurrency ?? 10) : (this.lanes[lane]?.concurrency ?? 10);
      const worker = new Worker(lane, (job) => this.run(job), {
        connection: this.connect('worker'),
        prefix: this.prefix,
        concurrency,
        lockDuration: this.options.lockDurationMs ?? 30_000,
        stalledInterval: this.options.stalledIntervalMs ?? 30_000,
        maxStalledCount: this.options.maxStalledCount ?? 2,
        // An idle worker's blocking wait for a job (a job added or falling due ends it at once): 10 s, the
        // longest BullMQ itself waits when a job is delayed, rather than its 5 s default.
        drainDelay: 10,
        autorun: false,
        settings: { backoffStrategy: cappedBackoff },
      });
      worker.on('error', (err) => {
        if (!isConnectionError(err)) this.logger.error({ err, lane }, 'job worker error');
      });
      worker.on('failed', (job, err) => {
        if (!job) return;
        const final = job.attemptsMade >= (job.opts.attempts ?? 1);
        const details = { job: job.name, id: job.id, lane, attempt: job.attemptsMade, err };
        if (final) this.logger.error(details, 'job failed for good');
        else this.logger.warn(details, 'job failed, retrying');
      });
      this.workers.push(worker);
      void worker.run().catch((err) => this.logger.error({ err, lane }, 'job worker stopped'));
    }
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
  }

  /** Waits for running jobs, then closes the workers, the queues and their connections. */
  async close(): Promise<void> {
    await Promise.allSettled([
      ...this.workers.map((w) => w.close()),
      ...[...this.light.values()].map((l) => l.close()),
    ]);
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    await Promise.allSettled(this.connections.map((c) => c.quit()));
    // Never connected when no lane of this process subscribed.
    this.lightSubscriber?.disconnect();
  }

  /**
   * Jobs an earlier version left waiting or delayed in the lane's BullMQ queue (of the same name), moved
   * into the light lane, then removed there: each keeps its id (or coalescing key), its data and the time
   * it was due. Adding is idempotent (a job id or key is one member of the lane), so replicas starting at
   * once move each job once; a job an earlier replica is running (locked) is left to it.
   */
  async moveEarlierJobs(lane: string, light: RedisWorkLane): Promise<number> {
    const groupOf = this.lanes[lane]?.light?.groupOf;
    let moved = 0;
    try {
      await waitUntilReady(this.queueConnection);
      const queue = this.queueByLane(lane);
      const jobs = await queue.getJobs(['wait', 'delayed', 'paused', 'prioritized'], 0, -1, true);
      for (const job of jobs) {
        if (!job?.id) continue;
        const group = groupOf?.(job.name, job.data);
        const dedup = job.opts.deduplication?.id;
        const options: JobOptions = {
          ...(job.opts.jobId !== undefined
            ? { id: fromBullJobId(job.opts.jobId) }
            : dedup !== undefined
              ? { coalesce: dedup }
              : { id: `bullmq/${lane}/${job.id}` }),
          delayMs: Math.max(0, job.timestamp + (job.delay ?? 0) - Date.now()),
          ...(group !== undefined ? { group } : {}),
        };
        await light.add(job.name, job.data, options);
        await job.remove().catch(() => undefined);
        moved++;
      }
      if (moved > 0)
        this.logger.warn({ lane, jobs: moved }, 'jobs an earlier version queued moved into the light lane');
    } catch (error) {
      // Not reachable now: the next start moves them; the maintenance sweep re-queues approvals meanwhile.
      this.logger.error({ err: error, lane }, 'jobs an earlier version queued not moved');
    }
    return moved;
  }

  /** The BullMQ queue of the lane that runs job `name` (opened on first use, on the shared connection). */
  private queueOf(name: string): Queue {
    return this.queueByLane(laneOf(this.lanes, name));
  }

  private queueByLane(lane: string): Queue {
    let queue = this.queues.get(lane);
    if (!queue) {
      queue = new Queue(lane, { connection: this.queueConnection, prefix: this.prefix });
      // Connection errors are reported once per outage by `connect`; BullMQ repeats them on every retry.
      queue.on('error', () => {});
      this.queues.set(lane, queue);
    }
    return queue;
  }

  /** The light lane that runs job `name` (or, with `byLane`, the light lane of that name), if any. */
  private lightLaneOf(name: string, byLane = false): RedisWorkLane | undefined {
    const lane = byLane ? name : laneOf(this.lanes, name);
    const spec = this.lanes[lane]?.light;
    if (!spec) return undefined;
    let light = this.light.get(lane);
    if (!light) {
      this.lightConnection ??= this.options.cluster
        ? createRedisCluster(this.options.url)
        : createRedisConnection(this.options.url, { connectionName: 'mdr-lanes' });
      if (!this.connections.includes(this.lightConnection)) {
        this.lightConnection.on('error', () => {});
        this.connections.push(this.lightConnection);
      }
      if (!this.lightSubscriber) {
        // Reconnects and subscribes again for ever, like a worker's connection.
        this.lightSubscriber = this.options.cluster
          ? createRedisCluster(this.options.url, { enableOfflineQueue: true, lazyConnect: true })
          : createRedisConnection(this.options.url, {
              connectionName: 'mdr-lanes-notify',
              purpose: 'worker',
              lazyConnect: true,
              // Its ready check (INFO) would follow the lanes' SUBSCRIBEs out of the offline queue and be
              // refused in subscriber mode, failing the subscription: ready as soon as it is connected.
              enableReadyCheck: false,
            });
        this.lightSubscriber.on('error', () => {});
      }
      light = new RedisWorkLane({
        redis: this.lightConnection,
        subscriber: this.lightSubscriber,
        prefix: this.options.keyPrefix ?? 'mdr:',
        lane,
        concurrency: this.lanes[lane]?.concurrency ?? 10,
        attempts: spec.attempts,
        backoffMs: this.backoffMs,
        ...(this.options.lockDurationMs !== undefined ? { leaseMs: this.options.lockDurationMs } : {}),
        logger: this.logger,
        handler: (job) => this.handlers.get(job),
      });
      this.light.set(lane, light);
    }
    return light;
  }

  private async run(job: Job): Promise<void> {
    const handler = this.handlers.get(job.name);
    if (!handler) throw new MdrError('internal', `no handler registered for job "${job.name}"`);
    await handler(job.data);
  }

  private connect(purpose: 'queue' | 'worker'): Redis | Cluster {
    // The queue fails fast like the store; the worker blocks and retries for ever, as BullMQ requires.
    const connection = this.options.cluster
      ? createRedisCluster(
          this.options.url,
          purpose === 'worker'
            ? {
                enableOfflineQueue: true,
                redisOptions: { maxRetriesPerRequest: null, commandTimeout: undefined },
              }
            : {},
        )
      : createRedisConnection(this.options.url, { purpose });
    let down = false;
    connection.on('error', (err) => {
      if (down) return;
      down = true;
      this.logger.error({ err, purpose }, 'job queue: Redis is not reachable, reconnecting');
    });
    connection.on('ready', () => {
      if (!down) return;
      down = false;
      this.logger.warn({ purpose }, 'job queue: Redis is reachable again');
    });
    this.connections.push(connection);
    return connection;
  }
}
