import type { ActionRef } from './approve-action.js';
import { type Actor, transition } from './decisions.js';
import { assetOf, type DecisionSubject, type ExclusionDecision, evaluateExclusion } from './exclusions.js';
import { rulesInForce } from './exclusions-in-force.js';
import type { ActionRecord } from './model.js';
import type { CoreDeps, ExecutionOutcome } from './ports.js';

const SYSTEM: Actor = { id: 'system', platform: 'system' };

export type ExecuteResult = { status: 'done'; action: ActionRecord } | { status: 'skipped'; reason: string };

/**
 * Carry out an approved action (the durable job's body). Runs at most once per action: the move to
 * `executing` is a compare-and-set, and a restarted job finds the action `executing` with its remote
 * operation id and resumes it instead of sending again. Exclusions are checked once more first, and
 * again right after the move to `executing` when they changed in between.
 */
export async function executeAction(deps: CoreDeps, ref: ActionRef): Promise<ExecuteResult> {
  const loaded = await deps.store.loadForDecision(ref.incidentId, ref.actionId);
  if (!loaded) return { status: 'skipped', reason: 'no such incident or action' };
  const { incident } = loaded;
  let action = loaded.action;

  if (action.state === 'approved') {
    const exclusions = rulesInForce(deps.policy.exclusions, loaded.exclusionChanges);
    const decision = await evaluateExclusion(exclusions, action, incident, deps.directory);
    if (decision.kind !== 'allowed') return notRun(deps, ref, action, decision, '');
    if (action.type === 'releaseFileFromQuarantine') {
      const moved = await transition(
        deps,
        action,
        'expertTask',
        {},
        { actor: SYSTEM, event: 'execute', detail: 'expertTask: no API, guided steps for the expert' },
      );
      await deps.notifier.incidentChanged(ref.incidentId);
      return moved.ok
        ? { status: 'done', action: moved.action }
        : { status: 'skipped', reason: 'changed meanwhile' };
    }
    const started = await transition(
      deps,
      action,
      'executing',
      { progress: 'Starting', dryRun: deps.executor.dryRun, resolved: decision.subject },
      { actor: SYSTEM, event: 'execute', detail: deps.executor.dryRun ? 'executing (dry run)' : 'executing' },
    );
    if (!started.ok) return { status: 'skipped', reason: 'another worker took it' };
    action = started.action;
    // An exclusion added after the check above, before the move to `executing`, must still stop it:
    // now that no one else can start the action, read the exclusions' version again (one GET; it lives
    // in another slot than the action, so no script can read both on Redis Cluster) and, if it moved,
    // check again with the rules now in force before anything is called.
    const latest = await deps.store.getExclusionChanges();
    if (latest.version !== loaded.exclusionChanges.version) {
      const again = await evaluateExclusion(
        rulesInForce(deps.policy.exclusions, latest),
        action,
        incident,
        deps.directory,
      );
      if (again.kind !== 'allowed')
        return notRun(deps, ref, action, again, ' (exclusions changed while it was being started)');
      if (!sameSubject(again.subject, decision.subject)) {
        const asset = assetOf(action.target, incident);
        const reason = `${asset} resolved to another identity while the action was being started`;
        return notRun(deps, ref, action, { kind: 'unverifiable', asset, reason }, '');
      }
    }
    await deps.notifier.incidentChanged(ref.incidentId);
  } else if (action.state !== 'executing') {
    return { status: 'skipped', reason: `action is ${action.state}` };
  }

  // Progress and checkpoints are written by this worker alone; `action` tracks the latest version.
  const update = async (patch: Partial<ActionRecord>, detail: string) => {
    const r = await transition(deps, action, 'executing', patch, {
      actor: SYSTEM,
      event: 'progress',
      detail,
    });
    if (r.ok) action = r.action;
    else if (r.current) action = r.current;
  };
  let outcome: ExecutionOutcome;
  try {
    outcome = await deps.executor.execute(action, {
      incident,
      approvedBy: action.decidedBy ?? 'unknown',
      progress: async (message) => {
        await update({ progress: message }, message);
        await deps.notifier.incidentChanged(ref.incidentId);
      },
      checkpoint: async (externalId) => update({ externalId }, `remote operation ${externalId}`),
    });
  } catch (error) {
    outcome = { ok: false, reason: error instanceof Error ? error.message : String(error) };
  }
  const final = outcome.ok
    ? await transition(
        deps,
        action,
        'succeeded',
        { result: outcome.detail, progress: undefined },
        {
          actor: SYSTEM,
          event: 'execute',
          detail: `succeeded: ${outcome.detail}`,
        },
      )
    : await transition(
        deps,
        action,
        'failed',
        { error: outcome.reason, progress: undefined },
        {
          actor: SYSTEM,
          event: 'execute',
          outcome: 'failed',
          detail: `failed: ${outcome.reason}`,
        },
      );
  await deps.notifier.incidentChanged(ref.incidentId);
  return final.ok
    ? { status: 'done', action: final.action }
    : { status: 'skipped', reason: 'changed meanwhile' };
}

/**
 * The asset may not be acted on (excluded, or the exclusions cannot be verified): the executor is not
 * called. Excluded: a customer task (with its reminder). Unverifiable: failed, so an expert may retry.
 */
async function notRun(
  deps: CoreDeps,
  ref: ActionRef,
  action: ActionRecord,
  decision: Exclude<ExclusionDecision, { kind: 'allowed' }>,
  when: string,
): Promise<ExecuteResult> {
  const moved =
    decision.kind === 'excluded'
      ? await transition(
          deps,
          action,
          'customerPending',
          { excludedBy: decision.rule, progress: undefined, dryRun: undefined },
          {
            actor: SYSTEM,
            event: 'execute',
            outcome: 'refused',
            detail: `asset_excluded: ${decision.rule}; now customerPending${when}`,
          },
        )
      : await transition(
          deps,
          action,
          'failed',
          { error: `Not run: ${decision.reason}`, progress: undefined, dryRun: undefined },
          {
            actor: SYSTEM,
            event: 'execute',
            outcome: 'refused',
            detail: `exclusion_unverifiable: ${decision.reason}${when}`,
          },
        );
  if (moved.ok && moved.action.state === 'customerPending') {
    const dueAt = new Date(deps.clock.now().getTime() + deps.policy.reminders.pendingTaskHours * 3_600_000);
    await deps.jobs.schedule({ kind: 'remind', ...ref, dueAt: dueAt.toISOString() });
  }
  await deps.notifier.incidentChanged(ref.incidentId);
  return moved.ok
    ? { status: 'done', action: moved.action }
    : { status: 'skipped', reason: 'changed meanwhile' };
}

function sameSubject(a: DecisionSubject | undefined, b: DecisionSubject | undefined): boolean {
  return a?.userId === b?.userId && a?.deviceId === b?.deviceId;
}
