import { type ManagedStatus, managedStatus } from './managed-status.js';
import type { ActionRecord } from './model.js';
import { LIFECYCLE } from './state-machine.js';

/** Custom tags on the Graph incident that carry the managed status; one of them at a time. */
export const MDR_TAG_PREFIX = 'MDR:';

export const MDR_TAGS = {
  awaitingCustomerAction: 'MDR: Awaiting customer action',
  inProgress: 'MDR: In progress',
  resolved: 'MDR: Resolved',
} as const;

/**
 * The custom tag of a managed status. `active` (nothing handled yet) is the experts' work as much as
 * `inProgress`, so both read "In progress".
 */
export function mdrTagOf(status: ManagedStatus): string {
  if (status === 'awaitingCustomerAction') return MDR_TAGS.awaitingCustomerAction;
  if (status === 'resolved') return MDR_TAGS.resolved;
  return MDR_TAGS.inProgress;
}

/**
 * Defender's incident ids, which Graph's security incidents use too, are whole numbers. An incident
 * under any other id did not come from Defender and has no Graph incident to update.
 */
export function isGraphIncidentId(incidentId: string): boolean {
  return /^[0-9]{1,20}$/.test(incidentId);
}

/** What the Graph incident should show for the incident's actions. */
export interface WritebackTarget {
  tag: string;
  /** The owner to set; unset: `assignedTo` is left as it is. */
  assignedTo?: string;
}

/**
 * The tag of the managed status and, while customer tasks are open and the policy names a queue
 * (`notifications.assignTo`), that queue as the owner. When the tasks close the owner is left as it
 * is: whoever the customer's team handed the incident to next keeps it.
 */
export function writebackTarget(
  actions: readonly Pick<ActionRecord, 'state'>[],
  assignTo: string | undefined,
): WritebackTarget {
  const tag = mdrTagOf(managedStatus(actions));
  const customerOpen = actions.some((a) => LIFECYCLE[a.state].openFor === 'customer');
  return { tag, ...(customerOpen && assignTo ? { assignedTo: assignTo } : {}) };
}

/** What the Graph incident shows now. */
export interface GraphIncidentView {
  customTags: string[];
  assignedTo: string | null;
}

/** The PATCH body that brings the incident in step (only the properties that change). */
export interface IncidentPatch {
  customTags?: string[];
  assignedTo?: string;
}

const isMdrTag = (tag: string) => tag.trim().toLowerCase().startsWith(MDR_TAG_PREFIX.toLowerCase());

/**
 * The change that brings `current` to `target`, or null when it is in step already. The tags keep
 * every tag that is not an `MDR:` one, in their order, with the target tag last; `customTags` is sent
 * whole because a PATCH replaces the collection.
 */
export function planWriteback(current: GraphIncidentView, target: WritebackTarget): IncidentPatch | null {
  const patch: IncidentPatch = {};
  const mdr = current.customTags.filter(isMdrTag);
  if (mdr.length !== 1 || mdr[0] !== target.tag) {
    patch.customTags = [...current.customTags.filter((tag) => !isMdrTag(tag)), target.tag];
  }
  if (target.assignedTo !== undefined && current.assignedTo !== target.assignedTo) {
    patch.assignedTo = target.assignedTo;
  }
  return Object.keys(patch).length > 0 ? patch : null;
}
