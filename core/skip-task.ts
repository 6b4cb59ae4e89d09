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

/** Longest skip reason kept (card, audit, API). */
export const SKIP_REASON_MAX = 500;

/**
 * The customer's team closes a pending task without doing it (`customerPending → skippedByCustomer`),
 * saying why: customers and admins may, experts may not (the task is the customer's call). A reason is
 * required. The skipped task counts as closed for the managed status.
 */
export async function skipTask(
  deps: CoreDeps,
  ref: ActionRef,
  actor: Actor,
  reason: string,
): Promise<Decision> {
  const event = 'skip';
  const invalid = await checkRef(deps, actor, event, ref);
  if (invalid) return invalid;
  const roles = rolesOf(deps.policy.roles, actor.id);
  if (roles.expert && !roles.admin) {
    return refuse(
      deps,
      actor,
      event,
      ref,
      'not_customer',
      "customer tasks are skipped by the customer's team",
    );
  }
  const why = reason.replace(/\s+/g, ' ').trim().slice(0, SKIP_REASON_MAX);
  if (why.length === 0) {
    return refuse(
      deps,
      actor,
      event,
      ref,
      'not_allowed',
      'say why the task is skipped: skip <taskId> <reason>',
    );
  }
  const action = await deps.store.getAction(ref.incidentId, ref.actionId);
  if (!action)
    return refuse(deps, actor, event, ref, 'not_found', `no task ${ref.incidentId}:${ref.actionId}`);
  if (action.state !== 'customerPending') {
    const message = `this is not a pending task: ${describeHandled(action)}`;
    return refuse(deps, actor, event, ref, 'already_handled', message, action);
  }
  const result = await transition(
    deps,
    action,
    'skippedByCustomer',
    {
      skippedBy: actor.id,
      skippedByName: nameOf(actor),
      skippedAt: deps.clock.now().toISOString(),
      skipReason: why,
    },
    { actor, event, detail: `skippedByCustomer: ${why}`.slice(0, 500) },
  );
  if (!result.ok) {
    const current = result.current ?? action;
    return refuse(deps, actor, event, ref, 'already_handled', describeHandled(current), current);
  }
  await deps.notifier.incidentChanged(ref.incidentId);
  return result;
}
