import type { ActionRef } from './approve-action.js';
import { type Actor, transition } from './decisions.js';
import { evaluateExclusion } from './exclusions.js';
import type { ActionRecord } from './model.js';
import type { CoreDeps, ExecutionOutcome } from './ports.js';

const SYSTEM: Actor = { id: 'system', platform: 'system' };

export type ExecuteResult = { status: 'done'; action: ActionRecord } | { status: 'skipped'; reason: string };

/**
 * Carry out an approved action (the durable job's body). Runs at most once per action: the move to
 * `executing` is a compare-and-set, and a restarted job finds the action `executing` with its remote
 * operation id and resumes it instead of sending again. Exclusions are checked once more first.
 */
export async function executeAction(deps: CoreDeps, ref: ActionRef): Promise<ExecuteResult> {
  const loaded = await deps.store.loadForDecision(ref.incidentId, ref.actionId);
  if (!loaded) return { status: 'skipped', reason: 'no such incident or action' };
  const { incident } = loaded;
  let action = loaded.action;

  if (action.state === 'approved') {
    const exclusions = loaded.exclusions ?? deps.policy.exclusions;
    const decision = await evaluateExclusion(exclusions, action, incident, deps.directory);
    if (decision.kind !== 'allowed') {
      const moved =
        decision.kind === 'excluded'
          ? await transition(
              deps,
              action,
              'customerPending',
              { excludedBy: decision.rule },
              {
                actor: SYSTEM,
                event: 'execute',
                outcome: 'refused',
                detail: `asset_excluded: ${decision.rule}; now customerPending`,
              },
            )
          : await transition(
              deps,
              action,
              'failed',
              { error: `Not run: ${decision.reason}` },
              {
                actor: SYSTEM,
                event: 'execute',
                outcome: 'refused',
                detail: `exclusion_unverifiable: ${decision.reason}`,
              },
            );
      await deps.notifier.incidentChanged(ref.incidentId);
      return moved.ok
        ? { status: 'done', action: moved.action }
        : { status: 'skipped', reason: 'changed meanwhile' };
    }
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
      { progress: 'Starting', dryRun: deps.executor.dryRun },
      { actor: SYSTEM, event: 'execute', detail: deps.executor.dryRun ? 'executing (dry run)' : 'executing' },
    );
    if (!started.ok) return { status: 'skipped', reason: 'another worker took it' };
    action = started.action;
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
