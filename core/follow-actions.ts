import type { Actor } from './decisions.js';
import { transition } from './decisions.js';
import { finish } from './execute-action.js';
import type { ActionRecord } from './model.js';
import type { CoreDeps, RemoteCheck } from './ports.js';

const SYSTEM: Actor = { id: 'system', platform: 'system' };

/** Most actions one round asks about (the executor batches them; Defender takes 25 ids a request). */
export const FOLLOW_PER_ROUND = 100;

/**
 * How many rounds apart the checks of one action are, by how many rounds ago it was submitted: every
 * round until the second after it, then every 2nd round (every 10 s at the default 5 s) until round 12,
 * every 4th until round 60 (5 minutes), then every 6th. An operation that ends soon is seen soon; one
 * that takes minutes costs a check every 20 to 30 s, not every 5 s.
 */
const CHECK_EVERY: readonly { before: number; every: number }[] = [
  { before: 2, every: 1 },
  { before: 12, every: 2 },
  { before: 60, every: 4 },
];
const CHECK_EVERY_AFTER = 6;

/**
 * Whether the round `round` checks an action submitted in round `submittedRound`: every round up to
 * the second after it (its own round too, and any round a replica's clock puts before it), then as
 * CHECK_EVERY says. Worked out from the two rounds alone, so any replica's round reaches the same answer
 * and no check has to be recorded.
 */
export function checkDue(submittedRound: number, round: number): boolean {
  const n = round - submittedRound;
  let check = 2;
  while (check < n) check += CHECK_EVERY.find((c) => check < c.before)?.every ?? CHECK_EVERY_AFTER;
  return n <= 2 || check === n;
}

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
 * executor for the remote status of the actions `executing` with a remote id, in batches: while no more
 * are in flight than one round takes (`perRound`), those whose check is due this round (`checkDue`:
 * every round at first, then less and less often); when more are, a window of `perRound` of them that
 * moves along the list each round. Only those are read from the store. Ends the actions whose operation
 * ended (or whose bounded wait ran out). Each write is a
 * compare-and-set on the version read, so an action that moved meanwhile is left alone.
 *
 * Every status change is shown: a new remote status (Pending, then InProgress) updates the card like
 * the end does, one update per incident and round (the delivery lane gathers them).
 */
export async function followActions(deps: CoreDeps, options: FollowOptions = {}): Promise<FollowReport> {
  const perRound = Math.max(1, options.perRound ?? FOLLOW_PER_ROUND);
  const roundMs = Math.max(1, options.roundMs ?? 5_000);
  const round = Math.floor(deps.clock.now().getTime() / roundMs);
  const due = (submittedMs: number) => checkDue(Math.floor(submittedMs / roundMs), round);
  const { total, actions: chosen } = await deps.store.sliceActionsIn(
    'submitted',
    perRound,
    round * perRound,
    due,
  );
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
