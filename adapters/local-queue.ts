import { MdrError } from '../core/errors.js';
import { backoffMs } from './backoff.js';
import type { JobHandler, JobOptions, JobQueue } from './job-queue.js';

/** Where a queue reports a job that failed for good (pino's logger fits). */
export interface QueueLogger {
  error(details: object, message: string): void;
  warn(details: object, message: string): void;
}

/** Tuning of the in-process queue. */
export interface LocalQueueOptions {
  logger?: QueueLogger;
  /** First retry delay; doubled on each further attempt. */
  backoffMs?: number;
  /** How many finished job ids are remembered so the same id is not run again. */
  rememberIds?: number;
}

interface PendingJob {
  id?: string;
  coalesce?: string;
  delayMs: number;
  name: string;
  data: unknown;
  attempts: number;
  maxBackoffMs?: number;
  attempt: number;
  runAt: number;
}

const consoleLogger: QueueLogger = {
  error: (details, message) => console.error(message, details),
  warn: (details, message) => console.warn(message, details),
};

/**
 * The in-process job queue of local mode: a job id is run once (while waiting, running, or among the
 * last finished ones), delays are timers, failures are retried with exponential backoff, and a job that
 * fails for good is logged, never thrown. Not durable: jobs die with the process.
 */
export class LocalQueue implements JobQueue {
  private readonly handlers = new Map<string, JobHandler>();
  private readonly known = new Set<string>();
  /** Ids of jobs waiting, delayed or running (the others in `known` have finished). */
  private readonly unfinished = new Set<string>();
  private readonly intervals = new Map<string, NodeJS.Timeout>();
  /** Coalescing keys with a job waiting or running, and the last job added while it ran. */
  private readonly coalesced = new Map<string, { running: boolean; next?: PendingJob }>();
  private readonly waiting: PendingJob[] = [];
  /** Timers of scheduled jobs, and when each job is due (epoch ms). */
  private readonly timers = new Map<NodeJS.Timeout, number>();
  private readonly running = new Set<Promise<void>>();
  private readonly logger: QueueLogger;
  private readonly backoffMs: number;
  private readonly rememberIds: number;
  private started = false;
  private closed = false;

  constructor(options: LocalQueueOptions = {}) {
    this.logger = options.logger ?? consoleLogger;
    this.backoffMs = options.backoffMs ?? 1_000;
    this.rememberIds = options.rememberIds ?? 10_000;
  }

  async add(name: string, data: unknown, options: JobOptions = {}): Promise<void> {
    if (this.closed) throw new MdrError('queue_closed', 'the job queue is closed');
    if (options.id !== undefined) {
      if (this.unfinished.has(options.id)) return;
      if (this.known.has(options.id) && !options.replaceFinished) return;
      this.remember(options.id);
      this.unfinished.add(options.id);
    }
    const delayMs = Math.max(0, options.delayMs ?? 0);
    const job: PendingJob = {
      ...(options.id !== undefined ? { id: options.id } : {}),
      ...(options.coalesce !== undefined ? { coalesce: options.coalesce } : {}),
      name,
      data: structuredClone(data),
      delayMs,
      attempts: Math.max(1, options.attempts ?? 5),
      ...(options.maxBackoffMs !== undefined ? { maxBackoffMs: options.maxBackoffMs } : {}),
      attempt: 1,
      runAt: Date.now() + delayMs,
    };
    if (options.id === undefined && options.coalesce !== undefined) {
      const entry = this.coalesced.get(options.coalesce);
      // One waits: it runs later and sees this change. One runs: the last add runs after it.
      if (entry && !entry.running) return;
      if (entry) {
        entry.next = job;
        return;
      }
      this.coalesced.set(options.coalesce, { running: false });
    }
    if (this.started) this.schedule(job);
    else this.waiting.push(job);
  }

  async has(_name: string, id: string): Promise<boolean> {
    return this.unfinished.has(id);
  }

  /** A timer in this process (local mode runs one process): adds job `name` every `everyMs`. */
  async every(name: string, everyMs: number, data: unknown = {}): Promise<void> {
    clearInterval(this.intervals.get(name));
    const timer = setInterval(() => {
      if (!this.closed) void this.add(name, data, { attempts: 1 });
    }, everyMs);
    timer.unref();
    this.intervals.set(name, timer);
  }

  process(name: string, handler: JobHandler): void {
    this.handlers.set(name, handler);
  }

  async start(): Promise<void> {
    if (this.started || this.closed) return;
    this.started = true;
    for (const job of this.waiting.splice(0)) this.schedule(job);
  }

  /**
   * Resolves once no job runs and none is due within `withinMs` (periodic timers aside, and jobs
   * delayed further, such as reminders due in hours): "the queue is drained", for tests that assert
   * what did not happen.
   */
  async idle(withinMs = 60_000): Promise<void> {
    const busy = () => {
      const horizon = Date.now() + withinMs;
      return (
        this.running.size > 0 ||
        (this.started && this.waiting.length > 0) ||
        [...this.timers.values()].some((runAt) => runAt <= horizon)
      );
    };
    while (busy()) {
      await Promise.race([...this.running, new Promise((resolve) => setTimeout(resolve, 10))]);
    }
  }

  /** Stops timers (delayed and retrying jobs are dropped) and waits for running jobs to finish. */
  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.intervals.values()) clearInterval(timer);
    this.intervals.clear();
    for (const timer of this.timers.keys()) clearTimeout(timer);
    this.timers.clear();
    this.waiting.length = 0;
    this.coalesced.clear();
    await Promise.allSettled([...this.running]);
  }

  private schedule(job: PendingJob): void {
    const timer = setTimeout(
      () => {
        this.timers.delete(timer);
        const run = this.run(job).finally(() => this.running.delete(run));
        this.running.add(run);
      },
      Math.max(0, job.runAt - Date.now()),
    );
    this.timers.set(timer, job.runAt);
  }

  private async run(job: PendingJob): Promise<void> {
    const handler = this.handlers.get(job.name);
    const coalesced = job.coalesce !== undefined ? this.coalesced.get(job.coalesce) : undefined;
    if (coalesced) coalesced.running = true;
    try {
      if (!handler) throw new MdrError('internal', `no handler registered for job "${job.name}"`);
      await handler(job.data);
    } catch (error) {
      if (job.attempt < job.attempts && !this.closed) {
        const delayMs = backoffMs(this.backoffMs, job.attempt - 1, job.maxBackoffMs);
        this.logger.warn(
          { job: job.name, attempt: job.attempt, delayMs, err: error },
          'job failed, retrying',
        );
        if (coalesced) coalesced.running = false;
        this.schedule({ ...job, attempt: job.attempt + 1, runAt: Date.now() + delayMs });
        return;
      }
      this.logger.error({ job: job.name, attempts: job.attempt, err: error }, 'job failed for good');
    }
    if (job.id !== undefined) this.unfinished.delete(job.id);
    if (job.coalesce !== undefined) this.finishCoalesced(job.coalesce);
  }

  /** A job of a coalescing key ended: queue the last one added while it ran, if any. */
  private finishCoalesced(key: string): void {
    const next = this.coalesced.get(key)?.next;
    if (!next || this.closed) {
      this.coalesced.delete(key);
      return;
    }
    this.coalesced.set(key, { running: false });
    this.schedule({ ...next, runAt: Date.now() + next.delayMs });
  }

  private remember(id: string): void {
    this.known.add(id);
    if (this.known.size <= this.rememberIds) return;
    const oldest = this.known.values().next().value;
    if (oldest !== undefined) this.known.delete(oldest);
  }
}
