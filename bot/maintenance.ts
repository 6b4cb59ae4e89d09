import { recoverApprovals } from '../core/recover-approvals.js';
import type { Runtime } from './runtime.js';

const LEASE = 'maintenance';

/**
 * Periodic upkeep, run by one replica at a time (a lease in the store): re-schedules approvals whose
 * execution job was lost, so nothing approved stays unexecuted.
 */
export class Maintenance {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly runtime: Runtime,
    private readonly intervalMs = 60_000,
    private readonly staleAfterMs = 60_000,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running = this.runOnce().catch((error: unknown) =>
        this.runtime.logger.warn({ err: (error as Error).message }, 'maintenance run failed; will retry'),
      );
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** One run; returns how many approvals were re-scheduled (0 when another replica holds the lease). */
  async runOnce(): Promise<number> {
    const { store, deps, logger } = this.runtime;
    if (!(await store.tryLock(LEASE, Math.max(1_000, this.intervalMs - 500)))) return 0;
    const recovered = await recoverApprovals(deps, this.staleAfterMs);
    if (recovered > 0)
      logger.warn({ recovered }, 're-scheduled approved actions whose execution job was lost');
    return recovered;
  }
}
