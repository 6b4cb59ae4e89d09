import type { ActionState } from './actions.js';
import type { ActionRecord } from './model.js';

/** The incident's managed status, as Defender Experts shows it; derived, never stored. */
export type ManagedStatus = 'active' | 'inProgress' | 'awaitingCustomerAction' | 'resolved';

/**
 * States that leave work to the experts. A failed action is among them: it stays open until an expert
 * retries it or hands it to the customer, so an incident whose last actions failed is never "Resolved".
 */
export const EXPERT_OPEN_STATES: readonly ActionState[] = [
  'proposed',
  'approved',
  'executing',
  'expertTask',
  'failed',
];

/** States that leave work to the customer's team. */
export const CUSTOMER_OPEN_STATES: readonly ActionState[] = ['customerPending'];

/**
 * `active` while nothing is handled yet, `inProgress` while the experts have work (a failure included),
 * `awaitingCustomerAction` when only customer tasks are left, `resolved` when nothing is open (succeeded,
 * rejected, done or skipped by the customer).
 */
export function managedStatus(actions: readonly Pick<ActionRecord, 'state'>[]): ManagedStatus {
  const handled = actions.some((a) => a.state !== 'proposed');
  if (!handled) return 'active';
  if (actions.some((a) => EXPERT_OPEN_STATES.includes(a.state))) return 'inProgress';
  if (actions.some((a) => CUSTOMER_OPEN_STATES.includes(a.state))) return 'awaitingCustomerAction';
  return 'resolved';
}
