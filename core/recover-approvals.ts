import { EXCLUSION_SWEEP_INCIDENTS } from './apply-exclusions.js';
import type { CoreDeps } from './ports.js';

/**
 * Re-schedule approved actions whose execution job was lost (the approval was recorded, then the queue
 * could not be reached). Safe to run anywhere, any time: executing is a compare-and-set from `approved`,
 * so an action whose first job is merely late still runs once. Returns how many were re-scheduled.
 */
export async function recoverApprovals(deps: CoreDeps, olderThanMs: number): Promise<number> {
  const cutoff = deps.clock.now().getTime() - olderThanMs;
  let scheduled = 0;
  for (const summary of await deps.store.listIncidents(EXCLUSION_SWEEP_INCIDENTS)) {
    const state = await deps.store.getIncident(summary.id);
    for (const action of state?.actions ?? []) {
      if (action.state !== 'approved' || Date.parse(action.updatedAt) > cutoff) continue;
      await deps.jobs.schedule({
        kind: 'execute',
        incidentId: action.incidentId,
        actionId: action.id,
        recoveryOf: action.version,
      });
      scheduled++;
    }
  }
  return scheduled;
}
