import type { ActionStore } from '../core/ports.js';
import type { Logger } from './logger.js';

/** What a periodic round needs. */
export interface PeriodicRoundOptions {
  /** The round's name, in its claims and its log lines. */
  name: string;
  everyMs: number;
  store: Pick<ActionStore, 'claimOnce'>;
  logger: Logger;
  run(): Promise<void>;
}

/**
 * Work run once per interval across every replica, too frequent for a queue job scheduler (a BullMQ
 * scheduled job costs about 65 Redis commands a run; a round here, one command a process): each
 * process's timer fires at the interval's boundaries (multiples of `everyMs` since the epoch, the same
 * in every process) and claims that interval in the store; the process that gets the claim runs the
 * round. A process runs one round at a time: when an interval begins while its round still runs, it
 * claims that interval once the round is over (unless another process took it meanwhile), as a queue
 * would run a job that fell due during the last one. A failed round is logged; the next interval runs
 * again.
 */
export class PeriodicRound {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** The latest interval that began while a round ran here: claimed once that round is over. */
  private waiting: number | undefined;
  private stopped = false;

  constructor(private readonly options: PeriodicRoundOptions) {}

  start(): void {
    if (this.timer || this.stopped) return;
    this.arm();
  }

  /** Stops the timer and waits for a round under way: it is finished, never cut short. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private arm(): void {
    const { everyMs } = this.options;
    this.timer = setTimeout(() => this.tick(), everyMs - (Date.now() % everyMs));
    // The server and the queue keep the process alive, not this timer.
    this.timer.unref();
  }

  private tick(): void {
    if (this.stopped) return;
    this.arm();
    // The boundary this tick was set for, even when the timer fired late.
    const interval = Math.round(Date.now() / this.options.everyMs);
    if (this.running) this.waiting = interval;
    else this.begin(interval);
  }

  private begin(interval: number): void {
    this.running = this.claimAndRun(interval).finally(() => {
      this.running = undefined;
      const next = this.waiting;
      this.waiting = undefined;
      if (next !== undefined && !this.stopped) this.begin(next);
    });
  }

  private async claimAndRun(interval: number): Promise<void> {
    const { name, everyMs, store, logger, run } = this.options;
    try {
      // Held for two intervals: a process whose clock is behind by less than one cannot take it again.
      if (!(await store.claimOnce(`${name}:${interval}`, 2 * everyMs))) return;
      await run();
    } catch (error) {
      logger.warn(
        { err: (error as Error).message, job: name },
        'periodic round failed; runs again next interval',
      );
    }
  }
}
