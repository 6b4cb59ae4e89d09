import { type Actor, transition } from './decisions.js';
import { requestBatchEmail } from './email-customer-tasks.js';
import { evaluateExclusion } from './exclusions.js';
import type { ActionRecord, Exclusions } from './model.js';
import type { CoreDeps } from './ports.js';
import { scheduleReminder } from './remind-task.js';

/** How many recent incidents an exclusion change re-checks at once. */
export const EXCLUSION_SWEEP_INCIDENTS = 200;

/**
 * After the exclusions changed: every proposed action of the recent incidents whose asset is now
 * excluded becomes a customer task at once, so the cards show it. (Approvals re-check anyway.)
 */
export async function applyExclusions(
  deps: CoreDeps,
  exclusions: Exclusions,
  actor: Actor,
): Promise<ActionRecord[]> {
  const moved: ActionRecord[] = [];
  const incidents = await deps.store.listIncidents(EXCLUSION_SWEEP_INCIDENTS);
  for (const summary of incidents) {
    const state = await deps.store.getIncident(summary.id);
    if (!state) continue;
    const tasks: ActionRecord[] = [];
    for (const action of state.actions) {
      if (action.state !== 'proposed') continue;
      const decision = await evaluateExclusion(exclusions, action, state.incident, deps.directory);
      if (decision.kind !== 'excluded') continue;
      const result = await transition(
        deps,
        action,
        'customerPending',
        { excludedBy: decision.rule, blockedReason: undefined },
        {
          actor,
          event: 'applyExclusions',
          detail: `customerPending (${decision.rule})`,
        },
      );
      if (!result.ok) continue;
      moved.push(result.action);
      tasks.push(result.action);
      await scheduleReminder(deps, { incidentId: action.incidentId, actionId: action.id });
    }
    if (tasks.length === 0) continue;
    await requestBatchEmail(deps, summary.id, tasks);
    await deps.notifier.incidentChanged(summary.id);
  }
  return moved;
}
