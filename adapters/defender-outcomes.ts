import type { ActionRecord } from '../core/model.js';
import type { ExecutionOutcome, SubmitResult } from '../core/ports.js';

/** An action that has ended as a failure, with its reason. */
export const fail = (reason: string): ExecutionOutcome => ({ ok: false, reason });

/** A submit that ended at once, with the remote id when one was created. */
export const finishedWith = (outcome: ExecutionOutcome, externalId?: string): SubmitResult => ({
  kind: 'finished',
  outcome,
  ...(externalId ? { externalId } : {}),
});

/** How long a submitted action is followed before its outcome is a failure. */
export interface FollowWindow {
  /** Longest wait for a remote operation to finish (ms). */
  maxPollMs: number;
  now: () => number;
}

/** Whether the action has waited its whole window since it was submitted. */
export function overdue(action: ActionRecord, window: FollowWindow): boolean {
  const since = Date.parse(action.submittedAt ?? action.updatedAt);
  return window.now() - since >= window.maxPollMs;
}

export function sameCase(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

export function formatDuration(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms >= 1000) return `${Math.round(ms / 1000)} s`;
  return `${ms} ms`;
}

/** Wait after a 429 that named none. */
export const DEFAULT_THROTTLE_MS = 60_000;
