import { customersOnly, decide, noTask, notPending } from './decide.js';
import { type ActionRef, type Actor, type Decision, nameOf } from './decisions.js';
import type { CoreDeps } from './ports.js';

/**
 * Mark a task done. A customer task (`customerPending`) is done by the customer's team (customers,
 * admins, or a tool through the REST API); an expert task (`expertTask`, release from quarantine, which
 * has no API) is marked done by an expert once carried out by hand.
 */
export async function markTaskDone(deps: CoreDeps, ref: ActionRef, actor: Actor): Promise<Decision> {
  const asked = await decide(deps, actor, 'markDone', ref, {
    notFound: noTask,
    from: ['expertTask', 'customerPending'],
    elsewhere: notPending,
    check: (action, roles) => {
      if (action.state !== 'expertTask') return customersOnly('marked done')(roles);
      return roles.expert
        ? null
        : { code: 'not_expert', message: 'this step is carried out and marked done by the MDR experts' };
    },
  });
  if (!asked.ok) return asked;
  const done = { doneBy: actor.id, doneByName: nameOf(actor), doneAt: deps.clock.now().toISOString() };
  const result =
    asked.action.state === 'expertTask'
      ? await asked.settle('succeeded', {
          ...done,
          result: `Done by hand, marked by ${nameOf(actor) ?? actor.id}`,
        })
      : await asked.settle('doneByCustomer', done);
  if (result.ok) await deps.notifier.incidentChanged(ref.incidentId);
  return result;
}
