import { z } from 'zod';
import type { ActionState } from './actions.js';
import { ID_PATTERN } from './incident.js';
import type { ActionRecord, AuditEntry, Identity, Platform } from './model.js';
import type { CasResult, CoreDeps } from './ports.js';
import { canTransition } from './state-machine.js';

/** Who is acting, and through which platform (set by our own wiring, never by card data). */
export interface Actor {
  id: Identity;
  platform: Platform;
  /**
   * The person's name as the platform gave it (Teams `from.name`): shown on cards, never used to decide
   * anything; the audit trail names `id`.
   */
  name?: string;
}

/** The longest name kept for a card. */
const NAME_MAX = 100;

/** The actor's name fit for a record: trimmed and bounded; undefined when there is none. */
export function nameOf(actor: Actor): string | undefined {
  const name = actor.name?.trim().slice(0, NAME_MAX);
  return name ? name : undefined;
}

/**
 * Who decided, as an action record keeps it: the identity, and the name beside it (cleared when this
 * decider has none, so an earlier decider's name never stands next to a later id).
 */
export function decidedByOf(
  actor: Actor,
  at: string,
): Pick<ActionRecord, 'decidedBy' | 'decidedByName' | 'decidedAt'> {
  return { decidedBy: actor.id, decidedByName: nameOf(actor), decidedAt: at };
}

/** Why a request was refused; shown to the person who asked and written to the audit trail. */
export type RefusalCode =
  | 'not_expert'
  | 'not_customer'
  | 'not_admin'
  | 'asset_excluded'
  | 'exclusion_unverifiable'
  | 'already_handled'
  | 'not_found'
  /** A choice sent with a decision that the action does not take (a scan type other than Quick or Full). */
  | 'invalid_choice'
  /** The request came from somewhere this bot does not answer it (a chat command outside the SOC channel). */
  | 'wrong_place'
  /** The person may not see or do this (a customer asking for the exclusion list). */
  | 'not_allowed';

export interface Refusal {
  ok: false;
  code: RefusalCode;
  message: string;
  /** The action as it stands, when there is one. */
  action?: ActionRecord;
}

export type Decision = { ok: true; action: ActionRecord } | Refusal;

export function auditEntry(
  deps: Pick<CoreDeps, 'clock'>,
  actor: Actor,
  event: string,
  outcome: AuditEntry['outcome'],
  detail: string,
  ids: { incidentId?: string; actionId?: string } = {},
): AuditEntry {
  return {
    at: deps.clock.now().toISOString(),
    ...ids,
    actor: actor.id,
    platform: actor.platform,
    event,
    outcome,
    detail,
  };
}

const refId = z.string().regex(ID_PATTERN, 'is not an id of this bot');
/** What a button, a command or an API call names: one action of one incident, and nothing else. */
export const actionRefSchema = z.strictObject({ incidentId: refId, actionId: refId });

/** One action of one incident, as `actionRefSchema` reads it. */
export type ActionRef = z.infer<typeof actionRefSchema>;

/**
 * Record a refusal that names no valid action (a malformed reference, an identity the platform could
 * not vouch for) in the policy audit trail. Every refusal is audited, these included.
 */
export async function recordRefusal(
  deps: Pick<CoreDeps, 'store' | 'clock'>,
  actor: Actor,
  event: string,
  detail: string,
): Promise<void> {
  await deps.store.appendAudit(auditEntry(deps, actor, event, 'refused', detail.slice(0, 500)));
}

/**
 * Validate an action reference before anything reads the store with it. A malformed one is refused as
 * `not_found` (audited in the policy trail, since it names no incident).
 */
export async function checkRef(
  deps: Pick<CoreDeps, 'store' | 'clock'>,
  actor: Actor,
  event: string,
  ref: unknown,
): Promise<Refusal | null> {
  if (actionRefSchema.safeParse(ref).success) return null;
  await recordRefusal(deps, actor, event, `not_found: malformed action reference ${JSON.stringify(ref)}`);
  return { ok: false, code: 'not_found', message: 'no such incident or action' };
}

/** Record a refusal and return it. Every refusal is audited. */
export async function refuse(
  deps: Pick<CoreDeps, 'store' | 'clock'>,
  actor: Actor,
  event: string,
  ids: { incidentId: string; actionId: string },
  code: RefusalCode,
  message: string,
  action?: ActionRecord,
): Promise<Refusal> {
  await deps.store.appendAudit(auditEntry(deps, actor, event, 'refused', `${code}: ${message}`, ids));
  return { ok: false, code, message, ...(action ? { action } : {}) };
}

/**
 * Move an action to `to` with a compare-and-set on its version, writing the audit entry atomically.
 * A transition the state machine does not allow is never attempted. The winner of a change of state
 * tells `deps.events`.
 */
export async function transition(
  deps: Pick<CoreDeps, 'store' | 'clock' | 'events'>,
  action: ActionRecord,
  to: ActionState,
  patch: Partial<ActionRecord>,
  audit: { actor: Actor; event: string; outcome?: AuditEntry['outcome']; detail?: string },
): Promise<CasResult> {
  if (action.state !== to && !canTransition(action.state, to)) return { ok: false, current: action };
  const now = deps.clock.now().toISOString();
  const next: ActionRecord = { ...action, ...patch, state: to, updatedAt: now, version: action.version + 1 };
  const entry = auditEntry(deps, audit.actor, audit.event, audit.outcome ?? 'ok', audit.detail ?? to, {
    incidentId: action.incidentId,
    actionId: action.id,
  });
  const result = await deps.store.compareAndSet(next, action.version, entry, action);
  if (result.ok && action.state !== to) await deps.events?.actionMoved(action, result.action);
  return result;
}

/** "already approved by slack:U0EXPERT1", or by the decider's name when their platform gave one. */
export function describeHandled(action: ActionRecord): string {
  const who = action.decidedByName ?? action.decidedBy;
  const by = who ? ` by ${who}` : '';
  return `this action is already ${action.state}${by}`;
}
