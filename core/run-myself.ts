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
import { clearEarlierRun } from './earlier-run.js';
import { rolesOf } from './policy.js';
import type { CoreDeps } from './ports.js';

/**
 * A customer admin has the bot carry out a pending customer task on their own asset
 * (`customerPending → approved`, then the usual execution job). It is the customer's decision, audited
 * as such: the exclusions bind the experts, not the customer, so they do not stop it, but the executor
 * still acts only on the identity resolved live (`decidedAs: 'customer'`). Refused for experts (an
 * expert may never act on an excluded asset, whatever other role they hold) and for customers who are
 * not admins.
 */
export async function runMyself(deps: CoreDeps, ref: ActionRef, actor: Actor): Promise<Decision> {
  const event = 'runMyself';
  const invalid = await checkRef(deps, actor, event, ref);
  if (invalid) return invalid;
  const roles = rolesOf(deps.policy.roles, actor.id);
  if (roles.expert) {
    return refuse(
      deps,
      actor,
      event,
      ref,
      'not_customer',
      "Run it myself is the customer's own decision, for the customer's admins: the MDR experts may not act on this asset",
    );
  }
  if (!roles.admin) {
    return refuse(
      deps,
      actor,
      event,
      ref,
      'not_admin',
      'only the admins named in the policy may have the bot carry out a task; mark it done or skip it instead',
    );
  }
  const action = await deps.store.getAction(ref.incidentId, ref.actionId);
  if (!action) return refuse(deps, actor, event, ref, 'not_found', 'no such incident or action');
  if (action.state !== 'customerPending') {
    const message = `this is not a pending task: ${describeHandled(action)}`;
    return refuse(deps, actor, event, ref, 'already_handled', message, action);
  }
  if (action.type === 'releaseFileFromQuarantine') {
    return refuse(
      deps,
      actor,
      event,
      ref,
      'not_allowed',
      'releasing a file from quarantine has no Defender API: follow the steps, then mark the task done',
      action,
    );
  }
  const result = await transition(
    deps,
    action,
    'approved',
    {
      ...clearEarlierRun(),
      attempt: (action.attempt ?? 1) + 1,
      ...decidedByOf(actor, deps.clock.now().toISOString()),
      decidedAs: 'customer',
      // The card offers no scan choice here: the admin's run is the default Quick scan.
      ...(action.type === 'runAntivirusScan' ? { scanType: 'Quick' as const } : {}),
    },
    {
      actor,
      event,
      detail:
        action.type === 'runAntivirusScan'
          ? 'approved (customer decision: run by the customer admin, Quick scan)'
          : 'approved (customer decision: run by the customer admin)',
    },
  );
  if (!result.ok) {
    const current = result.current ?? action;
    return refuse(deps, actor, event, ref, 'already_handled', describeHandled(current), current);
  }
  // A job of its own, named by this version: an earlier run's job (stopped by the exclusion) keeps its id.
  await Promise.all([
    deps.jobs.schedule({ kind: 'execute', ...ref, retry: result.action.version }),
    deps.notifier.incidentChanged(ref.incidentId),
  ]);
  return result;
}
