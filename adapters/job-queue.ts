/** Options for one job. */
export interface JobOptions {
  /** Idempotency key: a job with the same id that is waiting, running or done is not added again. */
  id?: string;
  /** Run no sooner than this many milliseconds from now. */
  delayMs?: number;
  /** Total attempts including the first (default 5), with exponential backoff between them. */
  attempts?: number;
}

export type JobHandler = (data: unknown) => Promise<void>;

/**
 * Durable background work: BullMQ on Redis, or an in-process queue in local mode. Handlers are
 * registered by name before `start()`.
 */
export interface JobQueue {
  add(name: string, data: unknown, options?: JobOptions): Promise<void>;
  process(name: string, handler: JobHandler): void;
  start(): Promise<void>;
  close(): Promise<void>;
}
