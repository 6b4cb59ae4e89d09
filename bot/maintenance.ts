import { recoverApprovals } from '../core/recover-approvals.js';
import type { Runtime } from './runtime.js';

/** The job of the periodic upkeep, run once a minute across all replicas (a queue job scheduler). */
export const MAINTENANCE_JOB = 'maintenance';
export const MAINTENANCE_EVERY_MS = 60_000;

/**
 * Periodic upkeep: re-schedules approvals whose execution job was lost, so nothing approved stays
 * unexecuted. The queue runs `runOnce` once per interval across all replicas (MAINTENANCE_JOB).
 */
export class Maintenance {
  constructor(
    private readonly runtime: Pick<Runtime, 'deps' | 'logger'>,
    private readonly staleAfterMs = 60_000,
  ) {}

  /** One run; returns how many approvals were re-scheduled. */
  async runOnce(): Promise<number> {
    const { deps, logger } = this.runtime;
    const recovered = await recoverApprovals(deps, this.staleAfterMs);
    if (recovered > 0)
      logger.warn({ recovered }, 're-scheduled approved actions whose execution job was lost');
    return recovered;
  }
}
