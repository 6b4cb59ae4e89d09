import { z } from 'zod';
import { applyExclusions } from './apply-exclusions.js';
import { type Actor, auditEntry } from './decisions.js';
import type { ActionRecord, DeviceRule, Exclusions, UserRule } from './model.js';
import { describeDeviceRule, describeUserRule, exclusionsSchema, rolesOf } from './policy.js';
import type { CoreDeps } from './ports.js';
import { parseOrThrow } from './validation.js';

/** The kinds the chat commands `exclude` / `unexclude` take. */
export const EXCLUSION_KINDS = ['device', 'user', 'device-group', 'user-group', 'device-tag'] as const;
export type ExclusionKind = (typeof EXCLUSION_KINDS)[number];

export type ExclusionChange =
  | { op: 'add' | 'remove'; kind: ExclusionKind; value: string }
  | { op: 'replace'; exclusions: unknown };

export type ExclusionResult =
  | { ok: true; exclusions: Exclusions; changed: boolean; rule?: string; movedToCustomer: ActionRecord[] }
  | { ok: false; code: 'not_admin'; message: string };

const valueSchema = z.string().trim().min(1, 'is empty').max(256, 'is longer than 256 characters');

/** `device 1e5b...` (40 hex) is an MDE id, any other device value a DNS name; a user with "@" is a UPN. */
export function ruleFor(kind: ExclusionKind, raw: string): { device?: DeviceRule; user?: UserRule } {
  const value = parseOrThrow(valueSchema, raw, 'value');
  switch (kind) {
    case 'device':
      return { device: /^[0-9a-f]{40}$/i.test(value) ? { id: value.toLowerCase() } : { name: value } };
    case 'device-group':
      return { device: { group: value } };
    case 'device-tag':
      return { device: { tag: value } };
    case 'user':
      return { user: value.includes('@') ? { upn: value } : { id: value } };
    case 'user-group':
      return { user: { group: value } };
  }
}

const key = (rule: object) =>
  JSON.stringify(Object.entries(rule).map(([k, v]) => [k, String(v).toLowerCase()]));

/**
 * Change the exclusions (admins only; the REST API's admin token counts as an admin). The new list is
 * stored for every replica; actions are re-checked against it whenever an expert acts.
 */
export async function changeExclusions(
  deps: CoreDeps,
  change: ExclusionChange,
  actor: Actor,
): Promise<ExclusionResult> {
  const isAdmin = actor.platform === 'api' || rolesOf(deps.policy.roles, actor.id).admin;
  const event = change.op === 'replace' ? 'replaceExclusions' : change.op === 'add' ? 'exclude' : 'unexclude';
  if (!isAdmin) {
    await deps.store.appendAudit(auditEntry(deps, actor, event, 'refused', 'not_admin'));
    return {
      ok: false,
      code: 'not_admin',
      message: 'only the admins named in the policy may change exclusions',
    };
  }
  const current = (await deps.store.getExclusions()) ?? deps.policy.exclusions;
  let next: Exclusions;
  let described: string | undefined;
  if (change.op === 'replace') {
    next = parseOrThrow(exclusionsSchema, change.exclusions);
  } else {
    const { device, user } = ruleFor(change.kind, change.value);
    const rule = (device ?? user) as object;
    described = device ? describeDeviceRule(device) : describeUserRule(user as UserRule);
    const list = device ? current.devices : current.users;
    const without = (list as object[]).filter((r) => key(r) !== key(rule));
    const updated = change.op === 'add' ? [...without, rule] : without;
    next = device
      ? { ...current, devices: updated as DeviceRule[] }
      : { ...current, users: updated as UserRule[] };
  }
  const changed = JSON.stringify(next) !== JSON.stringify(current);
  await deps.store.setExclusions(
    next,
    auditEntry(deps, actor, event, 'ok', described ?? JSON.stringify(next)),
  );
  const movedToCustomer = changed ? await applyExclusions(deps, next, actor) : [];
  return { ok: true, exclusions: next, changed, movedToCustomer, ...(described ? { rule: described } : {}) };
}

/** The exclusions in force: changed at run time, else the policy file's. */
export async function currentExclusions(deps: Pick<CoreDeps, 'store' | 'policy'>): Promise<Exclusions> {
  return (await deps.store.getExclusions()) ?? deps.policy.exclusions;
}
