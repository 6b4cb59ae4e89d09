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
 * executor for the remote status of every action `executing` with a remote id, in batches, shows status
 * changes on the card and ends the actions whose operation ended (or whose bounded wait ran out). Each
 * write is a compare-and-set on the version read, so an action that moved meanwhile is left alone.
 */
export async function followActions(deps: CoreDeps, options: FollowOptions = {}): Promise<FollowReport> {
  const perRound = Math.max(1, options.perRound ?? FOLLOW_PER_ROUND);
  const inFlight = await deps.store.listActionsIn('submitted', 10_000);
  const report: FollowReport = { inFlight: inFlight.length, checked: 0, changed: 0, ended: 0 };
  if (inFlight.length === 0) return report;
  const chosen = slice(inFlight, perRound, deps.clock.now().getTime(), options.roundMs ?? 5_000);
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

/** A window of `size` actions that moves along a longer list each round, so each is asked in turn. */
function slice(actions: ActionRecord[], size: number, nowMs: number, roundMs: number): ActionRecord[] {
  if (actions.length <= size) return actions;
  const round = Math.floor(nowMs / Math.max(1, roundMs));
  const start = (round * size) % actions.length;
  const window = actions.slice(start, start + size);
  return window.length === size ? window : [...window, ...actions.slice(0, size - window.length)];
}
