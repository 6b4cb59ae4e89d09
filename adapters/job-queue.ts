/** Options for one job. */
export interface JobOptions {
  /** Idempotency key: a job with the same id that is waiting, running or done is not added again. */
  id?: string;
  /** Run no sooner than this many milliseconds from now. */
  delayMs?: number;
  /** Total attempts including the first (default 5), with exponential backoff between them. */
  attempts?: number;
  /** The longest wait between two attempts: the exponential backoff stops growing there. */
  maxBackoffMs?: number;
  /**
   * With `id`: a job of that id that already finished (completed, or failed for good) is removed and the
   * job added again. A job of that id that is still waiting or running is kept, as always.
   */
  replaceFinished?: boolean;
  /**
   * Coalescing key (without `id`): while a job of this key waits or is delayed, further adds are dropped
   * (it runs later and reads the latest state); while one runs, the last add is kept and queued when it
   * ends (with its own delay). So at most one job of a key waits and one runs, and nothing added during a
   * run is lost.
   */
  coalesce?: string;
  /**
   * Jobs of one group never run at once, across every process (light lanes; see `JobQueue.exclusive`).
   * Elsewhere ignored.
   */
  group?: string;
}

/** What a queue tells a running job. */
export interface JobContext {
  /**
   * Aborts when the run must stop: its lease ended without being extended (a light lane), so the job is
   * another run's. A job checks it before each step with effects outside (a platform call).
   */
  signal?: AbortSignal;
}

export type JobHandler = (data: unknown, context?: JobContext) => Promise<void>;

/**
 * A lane: a queue of its own, with its own workers, so a slow kind of work (execution) never holds the
 * slots of another (card delivery). Jobs go to the lane that lists their name; unlisted names go to the
 * default lane.
 */
export interface Lane {
  /** Job names that run in this lane. */
  jobs: readonly string[];
  /** Jobs of this lane one process runs at once. */
  concurrency: number;
  /**
   * On Redis, keep this lane's jobs in one sorted set instead of BullMQ (a few Redis commands per job
   * instead of about 45): for frequent small jobs. Such a lane has no `every`, no finished-id memory (an
   * id added again after its job finished runs again) and one number of attempts for all its jobs.
   */
  light?: {
    attempts: number;
    /**
     * The group of a job of this lane (see `JobOptions.group`), for jobs an earlier version left in the
     * lane's BullMQ queue, which are moved into the light lane on start.
     */
    groupOf?(name: string, data: unknown): string | undefined;
  };
}

/** The lanes of a queue, by lane name (also the BullMQ queue name). */
export type Lanes = Record<string, Lane>;

/** The lane of job names no lane lists (and of jobs queued by versions without lanes). */
export const DEFAULT_LANE = 'jobs';

/** Which lane runs `jobName`. */
export function laneOf(lanes: Lanes, jobName: string): string {
  for (const [lane, spec] of Object.entries(lanes)) if (spec.jobs.includes(jobName)) return lane;
  return DEFAULT_LANE;
}

/**
 * Durable background work: BullMQ on Redis, or an in-process queue in local mode. Handlers are
 * registered by name before `start()`.
 */
export interface JobQueue {
  add(name: string, data: unknown, options?: JobOptions): Promise<void>;
  /**
   * True while a job `name` with this id waits, is delayed, or runs (false once it has finished). `data`:
   * the job's data as it was added (a light lane knows its jobs by id and data).
   */
  has(name: string, id: string, data?: unknown): Promise<boolean>;
  /**
   * Run job `name` every `everyMs`: one run per interval across every process sharing the queue (a
   * BullMQ job scheduler), whichever process's worker is free. Calling it again updates the interval.
   */
  every(name: string, everyMs: number, data?: unknown): Promise<void>;
  /** True when jobs `name` of one `group` never run at once (so a handler needs no lease of its own). */
  exclusive?(name: string): boolean;
  /**
   * Removes the schedule of job `name` (what `every` set up) from lane `lane`, with its next run: for a
   * schedule an earlier version left in a lane this one no longer has. Nothing when there is none.
   */
  dropSchedule?(lane: string, name: string): Promise<void>;
  process(name: string, handler: JobHandler): void;
  start(): Promise<void>;
  close(): Promise<void>;
}
