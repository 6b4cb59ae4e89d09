import { decide, expertsOnly } from './decide.js';
import { type ActionRef, type Actor, type Decision, decidedByOf } from './decisions.js';
import type { CoreDeps } from './ports.js';

/** An expert rejects a proposed action: it will not be carried out. */
export async function rejectAction(deps: CoreDeps, ref: ActionRef, actor: Actor): Promise<Decision> {
  const asked = await decide(deps, actor, 'reject', ref, {
    gates: [expertsOnly('reject actions')],
    from: ['proposed'],
  });
  if (!asked.ok) return asked;
  const result = await asked.settle('rejected', decidedByOf(actor, deps.clock.now().toISOString()));
  if (result.ok) await deps.notifier.incidentChanged(ref.incidentId);
  return result;
}
