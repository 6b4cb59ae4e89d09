import { approveAction } from './approve-action.js';
import type { ActionRef, Actor, Decision } from './decisions.js';
import { handOverAction } from './hand-over-action.js';
import { markTaskDone } from './mark-task-done.js';
import type { CoreDeps } from './ports.js';
import { rejectAction } from './reject-action.js';
import { retryAction } from './retry-action.js';
import { runMyself } from './run-myself.js';
import { skipTask } from './skip-task.js';

/** The buttons a card carries: the Teams `verb`, the Slack `action_id` prefix, the preview page's `verb`. */
export const BUTTON_VERBS = [
  'approve',
  'reject',
  'markDone',
  'retry',
  'handover',
  'runMyself',
  'skip',
] as const;

export type ButtonVerb = (typeof BUTTON_VERBS)[number];

/**
 * What a click carries besides the ids: the scan chosen with an approval, the reason typed under Skip.
 * Both as the platform sent them: the use cases check them (and audit a refusal).
 */
export interface ClickInput {
  scanType?: unknown;
  reason?: string;
}

/** The use case each button runs; every platform decides a click through this one map. */
export const USE_CASE_OF: Record<
  ButtonVerb,
  (deps: CoreDeps, ref: ActionRef, actor: Actor, input: ClickInput) => Promise<Decision>
> = {
  approve: (deps, ref, actor, { scanType }) =>
    approveAction(deps, ref, actor, scanType === undefined ? {} : { scanType }),
  reject: (deps, ref, actor) => rejectAction(deps, ref, actor),
  markDone: (deps, ref, actor) => markTaskDone(deps, ref, actor),
  retry: (deps, ref, actor) => retryAction(deps, ref, actor),
  handover: (deps, ref, actor) => handOverAction(deps, ref, actor),
  runMyself: (deps, ref, actor) => runMyself(deps, ref, actor),
  // A skip without a reason is refused by the use case: the reason is what the customer owes the experts.
  skip: (deps, ref, actor, { reason }) => skipTask(deps, ref, actor, reason ?? ''),
};
