import {
  type ActionRef,
  type Actor,
  checkRef,
  type Decision,
  decidedByOf,
  describeHandled,
  refuse,
  transition,
} from './decisions.js';
import { rolesOf } from './policy.js';
import type { CoreDeps } from './ports.js';

/** An expert rejects a proposed action: it will not be carried out. */
export async function rejectAction(deps: CoreDeps, ref: ActionRef, actor: Actor): Promise<Decision> {
  const event = 'reject';
  const invalid = await checkRef(deps, actor, event, ref);
  if (invalid) return invalid;
  if (!rolesOf(deps.policy.roles, actor.id).expert) {
    return refuse(
      deps,
      actor,
      event,
      ref,
      'not_expert',
      'only the MDR experts named in the policy may reject actions',
    );
  }
  const action = await deps.store.getAction(ref.incidentId, ref.actionId);
  if (!action) return refuse(deps, actor, event, ref, 'not_found', 'no such incident or action');
  if (action.state !== 'proposed')
    return refuse(deps, actor, event, ref, 'already_handled', describeHandled(action), action);
  const result = await transition(
    deps,
    action,
    'rejected',
    decidedByOf(actor, deps.clock.now().toISOString()),
    { actor, event },
  );
  if (!result.ok) {
    const current = result.current ?? action;
    return refuse(deps, actor, event, ref, 'already_handled', describeHandled(current), current);
  }
  await deps.notifier.incidentChanged(ref.incidentId);
  return result;
}
