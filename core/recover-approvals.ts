import { EXECUTION_LEASE_MS } from './execute-action.js';
import type { CoreDeps, CoreJob } from './ports.js';

/** Most actions of each phase one sweep looks at. */
export const RECOVERY_SWEEP_LIMIT = 2_000;

/**
 * Re-schedule actions whose execution job was lost: approved actions no job will start (the approval
 * was recorded, then the queue could not be reached), and `executing` actions with no remote operation
 * whose run stopped (its lease went stale) or that wait, released, for a delayed job that is gone. Reads
 * the store's indexes of those phases, whatever the age of the incident, and schedules a job only when
 * the queue has none for the action: a job merely late is left to run. Safe anywhere, any time: only the
 * holder of an action's execution token sends its request. Returns how many were re-scheduled.
 */
export async function recoverApprovals(
  deps: CoreDeps,
  olderThanMs: number,
  leaseMs = EXECUTION_LEASE_MS,
): Promise<number> {
  const now = deps.clock.now().getTime();
  const cutoff = now - olderThanMs;
  let scheduled = 0;
  const reschedule = async (job: CoreJob & { kind: 'execute' }) => {
    const known = deps.jobs.scheduled ? await deps.jobs.scheduled(job) : undefined;
    if (known === true) return;
    await deps.jobs.schedule(known === false ? { ...job, rerun: true } : job);
    scheduled++;
  };
  for (const action of await deps.store.listActionsIn('approved', RECOVERY_SWEEP_LIMIT)) {
    if (Date.parse(action.updatedAt) > cutoff) continue;
    // A retried action's job is named by its approved version (the version it still has while approved).
    await reschedule({
      kind: 'execute',
      incidentId: action.incidentId,
      actionId: action.id,
      ...(action.attempt ? { retry: action.version } : {}),
    });
  }
  for (const action of await deps.store.listActionsIn('starting', RECOVERY_SWEEP_LIMIT)) {
    if (Date.parse(action.updatedAt) > cutoff) continue;
    const since = Date.parse(action.leaseAt ?? action.updatedAt);
    if (action.executionToken !== undefined && now - since < leaseMs) continue;
    await reschedule({
      kind: 'execute',
      incidentId: action.incidentId,
      actionId: action.id,
      retry: action.version,
    });
  }
  return scheduled;
}
