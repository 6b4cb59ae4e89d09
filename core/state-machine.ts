import type { ActionState } from './actions.js';

/** Every allowed transition of the action lifecycle. Anything else is refused. */
export const TRANSITIONS: Readonly<Record<ActionState, readonly ActionState[]>> = {
  proposed: ['approved', 'rejected', 'customerPending'],
  // An approved action whose asset became excluded before it ran turns into a customer task; one whose
  // exclusions can no longer be verified fails rather than run blind.
  approved: ['executing', 'expertTask', 'customerPending', 'failed'],
  // The exclusions are read again right after the move to `executing`: one changed meanwhile stops the
  // action before the executor is called (a customer task if now excluded, failed if unverifiable).
  executing: ['succeeded', 'failed', 'customerPending'],
  expertTask: ['succeeded'],
  // A customer admin may have the bot carry the task out (`approved`), or the customer may skip it.
  customerPending: ['doneByCustomer', 'skippedByCustomer', 'approved'],
  succeeded: [],
  // A failure is open work: an expert retries it (exclusions checked again) or hands it to the customer.
  failed: ['approved', 'customerPending'],
  rejected: [],
  doneByCustomer: [],
  skippedByCustomer: [],
};

export function canTransition(from: ActionState, to: ActionState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** States in which an action still needs someone (an expert or the customer). */
export const OPEN_STATES: readonly ActionState[] = [
  'proposed',
  'approved',
  'executing',
  'expertTask',
  'customerPending',
];
