import type { Actor } from './decisions.js';
import { transition } from './decisions.js';
import { finish } from './execute-action.js';
import type { ActionRecord } from './model.js';
import type { CoreDeps, RemoteCheck } from './ports.js';

const SYSTEM: Actor = { id: 'system', platform: 'system' };

/** Most actions one round asks about (the executor batches them; Defender takes 25 ids a request). */
export const FOLLOW_PER_ROUND = 100;

export interface FollowOptions {
  /** Most actions asked about in one round; more in flight are taken in turn over the next rounds. */
  perRound?: number;
  /** The round's length, to take a different slice of a long list each round (default 5 s). */
  roundMs?: number;
}

/** What one round did. */
export interface FollowReport {
  inFlight: number;
  checked: number;
  changed: number;
  ended: number;
}

/**
 * One round of following submitted actions (run on an interval by one replica at a time): asks the
 * executor for the remote status of the actions `executing` with a remote id, in batches (a window of
 * `perRound` of them that moves along the list each round: only those are read from the store), and
 * ends the actions whose operation ended (or whose bounded wait ran out). Each write is a
 * compare-and-set on the version read, so an action that moved meanwhile is left alone.
 *
 * Every status change is shown: a new remote status (Pending, then InProgress) updates the card like
 * the end does, one update per incident and round (the delivery lane gathers them).
 */
export async function followActions(deps: CoreDeps, options: FollowOptions = {}): Promise<FollowReport> {
  const perRound = Math.max(1, options.perRound ?? FOLLOW_PER_ROUND);
  const round = Math.floor(deps.clock.now().getTime() / Math.max(1, options.roundMs ?? 5_000));
  const { total, actions: chosen } = await deps.store.sliceActionsIn('submitted', perRound, round * perRound);
  const report: FollowReport = { inFlight: total, checked: 0, changed: 0, ended: 0 };
  if (chosen.length === 0) return report;
  const results = await deps.executor.check(chosen);
  report.checked = chosen.length;
  const changed = new Set<string>();
  for (const [i, action] of chosen.entries()) {
    const result = results[i];
    if (!result || result.kind === 'unknown') continue;
    const moved = await apply(deps, action, result);
    if (!moved) continue;
    changed.add(action.incidentId);
    if (result.kind === 'finished') report.ended++;
    else report.changed++;
  }
  for (const incidentId of changed) await deps.notifier.incidentChanged(incidentId);
  return report;
}

/** Write what a check found; false when there was nothing to write or the action moved meanwhile. */
async function apply(deps: CoreDeps, action: ActionRecord, result: RemoteCheck): Promise<boolean> {
  if (result.kind === 'running') {
    if (action.remoteStatus === result.status && action.progress === result.progress) return false;
    const shown = await transition(
      deps,
      action,
      'executing',
      { remoteStatus: result.status, progress: result.progress },
      { actor: SYSTEM, event: 'progress', detail: result.progress },
    );
    return shown.ok;
  }
  if (result.kind !== 'finished') return false;
  let current: ActionRecord | null = action;
  // A progress write of another round may have bumped the version: end it while it is still the same
  // remote operation, never one another run recorded since.
  for (let attempt = 0; attempt < 2 && current; attempt++) {
    if (current.state !== 'executing' || current.externalId !== action.externalId) return false;
    const ended = await finish(deps, current, result.outcome);
    if (ended.ok) return true;
    current = ended.current;
  }
  return false;
}
