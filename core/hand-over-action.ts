import { decide, expertsOnly, onlyFailed } from './decide.js';
import { type ActionRef, type Actor, type Decision, decidedByOf } from './decisions.js';
import type { CoreDeps } from './ports.js';
import { taskOpened } from './remind-task.js';

/**
 * An expert hands a failed action to the customer (`failed → customerPending`): it becomes a customer
 * task whose guidance says why the experts' attempt failed, reminded like every other one.
 */
export async function handOverAction(deps: CoreDeps, ref: ActionRef, actor: Actor): Promise<Decision> {
  const asked = await decide(deps, actor, 'handover', ref, {
    gates: [expertsOnly('hand actions to the customer')],
    from: ['failed'],
    elsewhere: onlyFailed('handed to the customer'),
  });
  if (!asked.ok) return asked;
  const reason = asked.action.error?.trim() || 'the action failed';
  const result = await asked.settle(
    'customerPending',
    {
      handoverReason: reason,
      ...decidedByOf(actor, deps.clock.now().toISOString()),
      progress: undefined,
      executionToken: undefined,
      leaseAt: undefined,
    },
    { detail: `customerPending (handed over: ${reason})`.slice(0, 500) },
  );
  if (!result.ok) return result;
  await taskOpened(deps, ref, result.action);
  return result;
}
