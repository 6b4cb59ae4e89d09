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
import { requestBatchEmail } from './email-customer-tasks.js';
import { rolesOf } from './policy.js';
import type { CoreDeps } from './ports.js';
import { scheduleReminder } from './remind-task.js';

/**
 * An expert hands a failed action to the customer (`failed → customerPending`): it becomes a customer
 * task whose guidance says why the experts' attempt failed, reminded like every other one.
 */
export async function handOverAction(deps: CoreDeps, ref: ActionRef, actor: Actor): Promise<Decision> {
  const event = 'handover';
  const invalid = await checkRef(deps, actor, event, ref);
  if (invalid) return invalid;
  if (!rolesOf(deps.policy.roles, actor.id).expert) {
    return refuse(
      deps,
      actor,
      event,
      ref,
      'not_expert',
      'only the MDR experts named in the policy may hand actions to the customer',
    );
  }
  const action = await deps.store.getAction(ref.incidentId, ref.actionId);
  if (!action) return refuse(deps, actor, event, ref, 'not_found', 'no such incident or action');
  if (action.state !== 'failed') {
    const message = `only a failed action can be handed to the customer: ${describeHandled(action)}`;
    return refuse(deps, actor, event, ref, 'already_handled', message, action);
  }
  const reason = action.error?.trim() || 'the action failed';
  const now = deps.clock.now();
  const result = await transition(
    deps,
    action,
    'customerPending',
    {
      handoverReason: reason,
      ...decidedByOf(actor, now.toISOString()),
      progress: undefined,
      executionToken: undefined,
      leaseAt: undefined,
    },
    { actor, event, detail: `customerPending (handed over: ${reason})`.slice(0, 500) },
  );
  if (!result.ok) {
    const current = result.current ?? action;
    return refuse(deps, actor, event, ref, 'already_handled', describeHandled(current), current);
  }
  await Promise.all([
    scheduleReminder(deps, ref),
    requestBatchEmail(deps, ref.incidentId, [result.action]),
    deps.notifier.incidentChanged(ref.incidentId),
  ]);
  return result;
}
