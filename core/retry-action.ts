import { ACTION_CATALOGUE } from './actions.js';
import { currentExclusions } from './change-exclusions.js';
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
import { requestBatchEmail } from './email-customer-tasks.js';
import { evaluateExclusion } from './exclusions.js';
import type { ActionRecord } from './model.js';
import { rolesOf } from './policy.js';
import type { CoreDeps } from './ports.js';
import { scheduleReminder } from './remind-task.js';

/**
 * An expert retries a failed action (`failed → approved`), decided like an approval: the clicker must
 * be an expert, the action still failed, and its asset not excluded (checked again now, failing closed:
 * excluded since, it becomes a customer task; unverifiable, it stays failed and the expert is told why).
 * The new run gets an execution job of its own, named by the approved version.
 */
export async function retryAction(deps: CoreDeps, ref: ActionRef, actor: Actor): Promise<Decision> {
  const event = 'retry';
  const invalid = await checkRef(deps, actor, event, ref);
  if (invalid) return invalid;
  if (!rolesOf(deps.policy.roles, actor.id).expert) {
    return refuse(
      deps,
      actor,
      event,
      ref,
      'not_expert',
      'only the MDR experts named in the policy may retry actions',
    );
  }
  const loaded = await deps.store.loadForDecision(ref.incidentId, ref.actionId);
  if (!loaded) return refuse(deps, actor, event, ref, 'not_found', 'no such incident or action');
  const { incident, action } = loaded;
  if (action.state !== 'failed') {
    const message = `only a failed action can be retried: ${describeHandled(action)}`;
    return refuse(deps, actor, event, ref, 'already_handled', message, action);
  }

  const exclusions = await currentExclusions(deps, loaded.exclusionChanges);
  const decision = await evaluateExclusion(exclusions, action, incident, deps.directory);
  if (decision.kind === 'excluded') {
    const message = `${decision.asset} is excluded by ${decision.rule}: this is now a task for your team`;
    const moved = await transition(
      deps,
      action,
      'customerPending',
      { excludedBy: decision.rule },
      { actor, event, outcome: 'refused', detail: `asset_excluded: ${decision.rule}; now customerPending` },
    );
    if (!moved.ok) {
      const current = moved.current ?? action;
      return refuse(deps, actor, event, ref, 'already_handled', describeHandled(current), current);
    }
    await remindAndEmail(deps, ref, moved.action);
    await deps.notifier.incidentChanged(ref.incidentId);
    return { ok: false, code: 'asset_excluded', message, action: moved.action };
  }
  if (decision.kind === 'unverifiable') {
    const message = `${ACTION_CATALOGUE[action.type].label} ${decision.asset} was not retried: ${decision.reason}`;
    return refuse(deps, actor, event, ref, 'exclusion_unverifiable', message, action);
  }

  const attempt = (action.attempt ?? 1) + 1;
  const result = await transition(
    deps,
    action,
    'approved',
    {
      ...clearEarlierRun(),
      // A retry is the expert's decision, bound by the exclusions again, whoever decided the failed run.
      decidedAs: undefined,
      attempt,
      ...decidedByOf(actor, deps.clock.now().toISOString()),
    },
    { actor, event, detail: `approved (retry, attempt ${attempt})` },
  );
  if (!result.ok) {
    const current = result.current ?? action;
    return refuse(deps, actor, event, ref, 'already_handled', describeHandled(current), current);
  }
  await Promise.all([
    deps.jobs.schedule({ kind: 'execute', ...ref, retry: result.action.version }),
    deps.notifier.incidentChanged(ref.incidentId),
  ]);
  return result;
}

/** The first reminder and the email of a new customer task, as for every other one. */
async function remindAndEmail(deps: CoreDeps, ref: ActionRef, task: ActionRecord): Promise<void> {
  await scheduleReminder(deps, ref);
  await requestBatchEmail(deps, ref.incidentId, [task]);
}
