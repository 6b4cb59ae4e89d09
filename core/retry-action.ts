import { ACTION_CATALOGUE } from './actions.js';
import { decide, expertsOnly, onlyFailed } from './decide.js';
import { type ActionRef, type Actor, type Decision, decidedByOf } from './decisions.js';
import { clearEarlierRun } from './earlier-run.js';
import type { CoreDeps } from './ports.js';
import { taskOpened } from './remind-task.js';

/**
 * An expert retries a failed action (`failed → approved`), decided like an approval: the clicker must
 * be an expert, the action still failed, and its asset not excluded (checked again now, failing closed:
 * excluded since, it becomes a customer task; unverifiable, it stays failed and the expert is told why).
 * The new run gets an execution job of its own, named by the approved version.
 */
export async function retryAction(deps: CoreDeps, ref: ActionRef, actor: Actor): Promise<Decision> {
  const asked = await decide(deps, actor, 'retry', ref, {
    gates: [expertsOnly('retry actions')],
    from: ['failed'],
    elsewhere: onlyFailed('retried'),
    weigh: true,
  });
  if (!asked.ok) return asked;
  const { action, verdict } = asked;

  if (verdict.kind === 'excluded') {
    const message = `${verdict.asset} is excluded by ${verdict.rule}: this is now a task for your team`;
    const moved = await asked.settle(
      'customerPending',
      { excludedBy: verdict.rule },
      { outcome: 'refused', detail: `asset_excluded: ${verdict.rule}; now customerPending` },
    );
    if (!moved.ok) return moved;
    await taskOpened(deps, ref, moved.action);
    return { ok: false, code: 'asset_excluded', message, action: moved.action };
  }
  if (verdict.kind === 'unverifiable') {
    const message = `${ACTION_CATALOGUE[action.type].label} ${verdict.asset} was not retried: ${verdict.reason}`;
    return asked.refuse('exclusion_unverifiable', message, action);
  }

  const attempt = (action.attempt ?? 1) + 1;
  const result = await asked.settle(
    'approved',
    {
      ...clearEarlierRun(),
      // A retry is the expert's decision, bound by the exclusions again, whoever decided the failed run.
      decidedAs: undefined,
      attempt,
      ...decidedByOf(actor, deps.clock.now().toISOString()),
    },
    { detail: `approved (retry, attempt ${attempt})` },
  );
  if (!result.ok) return result;
  await Promise.all([
    deps.jobs.schedule({ kind: 'execute', ...ref, retry: result.action.version }),
    deps.notifier.incidentChanged(ref.incidentId),
  ]);
  return result;
}
