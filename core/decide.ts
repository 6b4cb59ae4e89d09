import type { ActionState } from './actions.js';
import { currentExclusions } from './change-exclusions.js';
import {
  type ActionRef,
  type Actor,
  checkRef,
  type Decision,
  describeHandled,
  type Refusal,
  type RefusalCode,
  refuse,
  transition,
} from './decisions.js';
import { type ExclusionDecision, evaluateExclusion } from './exclusions.js';
import type { ActionRecord, AuditEntry, ExclusionChanges, IncidentRecord } from './model.js';
import { type RoleSet, rolesOf } from './policy.js';
import type { CoreDeps } from './ports.js';

/** A reason to refuse a request, before it is recorded. */
export interface Objection {
  code: RefusalCode;
  message: string;
}

/** A check made before the store is read (on the asker's roles, or on the request itself). */
export type Gate = (roles: RoleSet) => Objection | null;

/** Only the MDR experts named in the policy may do `what` ("approve actions"). */
export function expertsOnly(what: string): Gate {
  return (roles) =>
    roles.expert
      ? null
      : { code: 'not_expert', message: `only the MDR experts named in the policy may ${what}` };
}

/** The customer's team (customers and admins, not an expert who is not also an admin) may do it. */
export function customersOnly(how: string): Gate {
  return (roles) =>
    roles.expert && !roles.admin
      ? { code: 'not_customer', message: `customer tasks are ${how} by the customer's team` }
      : null;
}

/** The refusal of a task that is no longer pending. */
export function notPending(action: ActionRecord): Objection {
  return { code: 'already_handled', message: `this is not a pending task: ${describeHandled(action)}` };
}

/** The refusal of a decision on a failed action, for an action that is not failed ("retried"). */
export function onlyFailed(done: string): (action: ActionRecord) => Objection {
  return (action) => ({
    code: 'already_handled',
    message: `only a failed action can be ${done}: ${describeHandled(action)}`,
  });
}

/** The `not_found` message of the task commands: "no task 48213:act-3". */
export function noTask(ref: ActionRef): string {
  return `no task ${ref.incidentId}:${ref.actionId}`;
}

/** What a decision asks of the request and of the action before the use case acts. */
export interface DecisionRule {
  /** Checked in this order before the store is read; the first objection is the refusal. */
  gates?: readonly Gate[];
  /** The states the decision starts from. */
  from: readonly ActionState[];
  /** The refusal for an action in another state: `already_handled`, "this action is already …" unless given. */
  elsewhere?: (action: ActionRecord, incident?: IncidentRecord) => Objection;
  /** Checked on an action in a state it starts from; the objection is refused with the action. */
  check?: (action: ActionRecord, roles: RoleSet) => Objection | null;
  /** The message of a `not_found` refusal (default "no such incident or action"). */
  notFound?: (ref: ActionRef) => string;
  /**
   * Read the incident and the exclusion changes with the action (one round trip) and weigh the exclusions
   * in force against it now, failing closed: for the decisions the exclusions bind.
   */
  weigh?: boolean;
}

/** A request that passed its rule: the action as read, with what is needed to carry it out. */
export interface Decided {
  ok: true;
  action: ActionRecord;
  roles: RoleSet;
  /** Refuse this request (recorded in the audit trail). */
  refuse(code: RefusalCode, message: string, action?: ActionRecord): Promise<Refusal>;
  /**
   * Move the action to `to` (see `transition`); a lost race is refused as `already_handled`, with the
   * action as it now stands.
   */
  settle(
    to: ActionState,
    patch: Partial<ActionRecord>,
    audit?: { outcome?: AuditEntry['outcome']; detail?: string },
  ): Promise<Decision>;
}

/** A decision that weighed the exclusions: the incident and the verdict on the action's asset. */
export interface Weighed extends Decided {
  incident: IncidentRecord;
  verdict: ExclusionDecision;
}

/**
 * The prelude every decision on an action shares: a well-formed reference, the gates, the action (or
 * `not_found`), a state it starts from, the rule's own check and, when asked, the exclusions in force.
 * Every refusal is audited under `event`; the result carries what the use case needs to go on.
 */
export async function decide<R extends DecisionRule>(
  deps: CoreDeps,
  actor: Actor,
  event: string,
  ref: ActionRef,
  rule: R,
): Promise<(R extends { weigh: true } ? Weighed : Decided) | Refusal> {
  type Outcome = (R extends { weigh: true } ? Weighed : Decided) | Refusal;
  const invalid = await checkRef(deps, actor, event, ref);
  if (invalid) return invalid;
  const no = (code: RefusalCode, message: string, action?: ActionRecord) =>
    refuse(deps, actor, event, ref, code, message, action);

  const roles = rolesOf(deps.policy.roles, actor.id);
  for (const gate of rule.gates ?? []) {
    const objection = gate(roles);
    if (objection) return no(objection.code, objection.message);
  }

  const loaded = await load(deps, ref, rule.weigh === true);
  if (!loaded) return no('not_found', rule.notFound?.(ref) ?? 'no such incident or action');
  const { action, incident } = loaded;
  if (!rule.from.includes(action.state)) {
    const objection = rule.elsewhere?.(action, incident) ?? {
      code: 'already_handled',
      message: describeHandled(action),
    };
    return no(objection.code, objection.message, action);
  }
  const objection = rule.check?.(action, roles);
  if (objection) return no(objection.code, objection.message, action);

  const decided: Decided = {
    ok: true,
    action,
    roles,
    refuse: no,
    settle: async (to, patch, audit = {}) => {
      const result = await transition(deps, action, to, patch, { actor, event, ...audit });
      if (result.ok) return result;
      const current = result.current ?? action;
      return no('already_handled', describeHandled(current), current);
    },
  };
  // Read with `weigh` (and only then) the action comes with its incident and the exclusion changes.
  if (!incident || !loaded.exclusionChanges) return decided as Outcome;
  const verdict = await weighExclusions(deps, action, incident, loaded.exclusionChanges);
  return { ...decided, incident, verdict } satisfies Weighed as Outcome;
}

/** May the experts act on this action's asset, by the exclusions in force now (read with the action)? */
export async function weighExclusions(
  deps: CoreDeps,
  action: ActionRecord,
  incident: IncidentRecord,
  changes: ExclusionChanges,
): Promise<ExclusionDecision> {
  return evaluateExclusion(await currentExclusions(deps, changes), action, incident, deps.directory);
}

async function load(
  deps: CoreDeps,
  ref: ActionRef,
  weigh: boolean,
): Promise<{ action: ActionRecord; incident?: IncidentRecord; exclusionChanges?: ExclusionChanges } | null> {
  if (weigh) return deps.store.loadForDecision(ref.incidentId, ref.actionId);
  const action = await deps.store.getAction(ref.incidentId, ref.actionId);
  return action ? { action } : null;
}
