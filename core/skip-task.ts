import { customersOnly, decide, noTask, notPending } from './decide.js';
import { type ActionRef, type Actor, type Decision, nameOf } from './decisions.js';
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
  const why = reason.replace(/\s+/g, ' ').trim().slice(0, SKIP_REASON_MAX);
  const asked = await decide(deps, actor, 'skip', ref, {
    gates: [
      customersOnly('skipped'),
      () =>
        why.length === 0
          ? { code: 'not_allowed', message: 'say why the task is skipped: skip <taskId> <reason>' }
          : null,
    ],
    notFound: noTask,
    from: ['customerPending'],
    elsewhere: notPending,
  });
  if (!asked.ok) return asked;
  const result = await asked.settle(
    'skippedByCustomer',
    {
      skippedBy: actor.id,
      skippedByName: nameOf(actor),
      skippedAt: deps.clock.now().toISOString(),
      skipReason: why,
    },
    { detail: `skippedByCustomer: ${why}`.slice(0, 500) },
  );
  if (result.ok) await deps.notifier.incidentChanged(ref.incidentId);
  return result;
}
