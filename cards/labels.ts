import type { ManagedStatus } from '../core/managed-status.js';
import type { Severity } from '../core/model.js';
import type { ActionGroupKey, IncidentCardView } from './view-types.js';

/** How each severity is shown: label, colour name, hex colour for HTML previews, symbol. */
export const SEVERITY: Record<Severity, IncidentCardView['severity']> = {
  high: { level: 'high', label: 'High', tone: 'attention', colour: '#C4314B', icon: '🔴' },
  medium: { level: 'medium', label: 'Medium', tone: 'warning', colour: '#E46B0F', icon: '🟠' },
  low: { level: 'low', label: 'Low', tone: 'accent', colour: '#C19C00', icon: '🟡' },
  informational: {
    level: 'informational',
    label: 'Informational',
    tone: 'default',
    colour: '#0F6CBD',
    icon: '🔵',
  },
  unknown: { level: 'unknown', label: 'Unknown', tone: 'default', colour: '#616161', icon: '⚪' },
};

/** How each managed status is shown. */
export const STATUS: Record<ManagedStatus, IncidentCardView['status']> = {
  active: { value: 'active', label: 'Active', tone: 'attention', icon: '🆕' },
  inProgress: { value: 'inProgress', label: 'In progress', tone: 'accent', icon: '⏳' },
  awaitingCustomerAction: {
    value: 'awaitingCustomerAction',
    label: 'Awaiting customer action',
    tone: 'warning',
    icon: '👤',
  },
  resolved: { value: 'resolved', label: 'Resolved', tone: 'good', icon: '✅' },
};

/** The title of each group of the managed-response panel. */
export const GROUP_TITLES: Record<ActionGroupKey, string> = {
  failed: 'Failed',
  completed: 'Completed by experts',
  awaitingExpert: 'Awaiting expert approval',
  expertTasks: 'Expert tasks',
  customerTasks: 'Pending customer actions',
  customerDone: 'Done by your team',
  rejected: 'Rejected',
};

/**
 * Display order on the card: failures first (open work nobody is doing until an expert retries or hands
 * them over), then the order of the managed-response summary (README.md): done, awaiting experts, the
 * customer's part, closed tasks.
 */
export const GROUP_ORDER: ActionGroupKey[] = [
  'failed',
  'completed',
  'awaitingExpert',
  'expertTasks',
  'customerTasks',
  'customerDone',
  'rejected',
];

/** Which groups get lines first when the card must be cut: the ones somebody has to act on. */
export const GROUP_PRIORITY: ActionGroupKey[] = [
  'failed',
  'awaitingExpert',
  'expertTasks',
  'customerTasks',
  'completed',
  'customerDone',
  'rejected',
];
