import {
  type ActionRef,
  type Actor,
  checkRef,
  type Decision,
  describeHandled,
  nameOf,
  refuse,
  transition,
} from './decisions.js';
import { rolesOf } from './policy.js';
import type { CoreDeps } from './ports.js';

/**
 * Mark a task done. A customer task (`customerPending`) is done by the customer's team (customers,
 * admins, or a tool through the REST API); an expert task (`expertTask`, release from quarantine, which
 * has no API) is marked done by an expert once carried out by hand.
 */
export async function markTaskDone(deps: CoreDeps, ref: ActionRef, actor: Actor): Promise<Decision> {
  const event = 'markDone';
  const invalid = await checkRef(deps, actor, event, ref);
  if (invalid) return invalid;
  const action = await deps.store.getAction(ref.incidentId, ref.actionId);
  if (!action)
    return refuse(deps, actor, event, ref, 'not_found', `no task ${ref.incidentId}:${ref.actionId}`);
  const roles = rolesOf(deps.policy.roles, actor.id);
  const now = deps.clock.now().toISOString();

  if (action.state === 'expertTask') {
    if (!roles.expert) {
      return refuse(
        deps,
        actor,
        event,
        ref,
        'not_expert',
        'this step is carried out and marked done by the MDR experts',
        action,
      );
    }
    const result = await transition(
      deps,
      action,
      'succeeded',
      {
        doneBy: actor.id,
        doneByName: nameOf(actor),
        doneAt: now,
        result: `Done by hand, marked by ${nameOf(actor) ?? actor.id}`,
      },
      { actor, event },
    );
    if (!result.ok)
      return refuse(deps, actor, event, ref, 'already_handled', describeHandled(result.current ?? action));
    await deps.notifier.incidentChanged(ref.incidentId);
    return result;
  }

  if (action.state !== 'customerPending') {
    return refuse(
      deps,
      actor,
      event,
      ref,
      'already_handled',
      `this is not a pending task: ${describeHandled(action)}`,
      action,
    );
  }
  if (roles.expert && !roles.admin) {
    return refuse(
      deps,
      actor,
      event,
      ref,
      'not_customer',
      "customer tasks are marked done by the customer's team",
      action,
    );
  }
  const result = await transition(
    deps,
    action,
    'doneByCustomer',
    { doneBy: actor.id, doneByName: nameOf(actor), doneAt: now },
    { actor, event },
  );
  if (!result.ok) {
    const current = result.current ?? action;
    return refuse(deps, actor, event, ref, 'already_handled', describeHandled(current), current);
  }
  await deps.notifier.incidentChanged(ref.incidentId);
  return result;
}
