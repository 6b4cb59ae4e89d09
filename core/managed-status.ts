import type { ActionRecord } from './model.js';
import { LIFECYCLE } from './state-machine.js';

/** The incident's managed status, as Defender Experts shows it; derived, never stored. */
export type ManagedStatus = 'active' | 'inProgress' | 'awaitingCustomerAction' | 'resolved';

/**
 * `active` while nothing is handled yet, `inProgress` while the experts have work (a failure included:
 * it stays open until an expert retries it or hands it over), `awaitingCustomerAction` when only
 * customer tasks are left, `resolved` when nothing is open. Who has work in each state is `LIFECYCLE`'s.
 */
export function managedStatus(actions: readonly Pick<ActionRecord, 'state'>[]): ManagedStatus {
  const handled = actions.some((a) => a.state !== 'proposed');
  if (!handled) return 'active';
  if (actions.some((a) => LIFECYCLE[a.state].openFor === 'expert')) return 'inProgress';
  if (actions.some((a) => LIFECYCLE[a.state].openFor === 'customer')) return 'awaitingCustomerAction';
  return 'resolved';
}
