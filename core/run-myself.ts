import { hasApi } from './actions.js';
import { decide, notPending } from './decide.js';
import { type ActionRef, type Actor, type Decision, decidedByOf } from './decisions.js';
import { clearEarlierRun } from './earlier-run.js';
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
  const asked = await decide(deps, actor, 'runMyself', ref, {
    gates: [
      (roles) =>
        roles.expert
          ? {
              code: 'not_customer',
              message:
                "Run it myself is the customer's own decision, for the customer's admins: the MDR experts may not act on this asset",
            }
          : null,
      (roles) =>
        roles.admin
          ? null
          : {
              code: 'not_admin',
              message:
                'only the admins named in the policy may have the bot carry out a task; mark it done or skip it instead',
            },
    ],
    from: ['customerPending'],
    elsewhere: notPending,
    check: (action) =>
      !hasApi(action.type)
        ? {
            code: 'not_allowed',
            message:
              'releasing a file from quarantine has no Defender API: follow the steps, then mark the task done',
          }
        : null,
  });
  if (!asked.ok) return asked;
  const { action } = asked;
  const result = await asked.settle(
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
      detail:
        action.type === 'runAntivirusScan'
          ? 'approved (customer decision: run by the customer admin, Quick scan)'
          : 'approved (customer decision: run by the customer admin)',
    },
  );
  if (!result.ok) return result;
  // A job of its own, named by this version: an earlier run's job (stopped by the exclusion) keeps its id.
  await Promise.all([
    deps.jobs.schedule({ kind: 'execute', ...ref, retry: result.action.version }),
    deps.notifier.incidentChanged(ref.incidentId),
  ]);
  return result;
}
