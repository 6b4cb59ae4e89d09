import type { ActionRecord } from './model.js';

/** The incident's managed status, as Defender Experts shows it; derived, never stored. */
export type ManagedStatus = 'active' | 'inProgress' | 'awaitingCustomerAction' | 'resolved';

export function managedStatus(actions: readonly Pick<ActionRecord, 'state'>[]): ManagedStatus {
  const expertWork = actions.some((a) =>
    ['proposed', 'approved', 'executing', 'expertTask'].includes(a.state),
  );
  const customerWork = actions.some((a) => a.state === 'customerPending');
  const handled = actions.some((a) => a.state !== 'proposed');
  if (actions.length === 0 || !handled) return 'active';
  if (expertWork) return 'inProgress';
  if (customerWork) return 'awaitingCustomerAction';
  return 'resolved';
}
