import type { ActionRecord } from './model.js';
import type { EntryDue, ExecutionPhase } from './ports.js';

/** Every phase, in the order an action goes through them. */
export const EXECUTION_PHASES: readonly ExecutionPhase[] = ['approved', 'starting', 'submitted'];

/** The phase of execution an action is in, or null when it is in none (proposed, ended, a task). */
export function phaseOf(action: ActionRecord): ExecutionPhase | null {
  if (action.state === 'approved') return 'approved';
  if (action.state !== 'executing') return null;
  return action.externalId ? 'submitted' : 'starting';
}

/**
 * Whether an action may still be in `phase` later. Index writes follow an action's write without being
 * atomic with it (another slot on Redis Cluster), so an index may hold an entry before its action gets
 * there; such an entry is kept, and dropped only once the action can no longer reach the phase.
 */
export function mayEnter(action: ActionRecord, phase: ExecutionPhase): boolean {
  const now = phaseOf(action);
  if (now === phase) return true;
  // A failed action may be retried: it goes through every phase again.
  if (action.state === 'proposed' || action.state === 'failed') return true;
  if (phase === 'approved') return false;
  if (action.state === 'approved') return true;
  return phase === 'submitted' && now === 'starting';
}

/**
 * A window of at most `size` entries of `list` starting at `from` (modulo its length), wrapping around to
 * its start: successive windows (`from` growing by `size`) take every entry in turn.
 */
export function windowOf<T>(list: readonly T[], size: number, from: number): T[] {
  if (list.length <= size) return [...list];
  const start = ((Math.floor(from) % list.length) + list.length) % list.length;
  const window = list.slice(start, start + size);
  return window.length === size ? window : [...window, ...list.slice(0, size - window.length)];
}

/**
 * The entries a window of `size` reads when only some are `due`: while the index fits in one window, the
 * due ones (the others wait until they are due); when it holds more, the window moves along all of them
 * as without `due` (a backlog is worked through at the full pace, each entry in turn).
 */
export function chooseEntries<T>(
  entries: readonly { entry: T; enteredMs: number }[],
  size: number,
  from: number,
  due: EntryDue,
): T[] {
  if (entries.length > size)
    return windowOf(
      entries.map((e) => e.entry),
      size,
      from,
    );
  return entries.filter((e) => due(e.enteredMs)).map((e) => e.entry);
}
