import { z } from 'zod';
import { applyExclusions } from './apply-exclusions.js';
import { type Actor, auditEntry } from './decisions.js';
import { ConflictError } from './errors.js';
import { asChanges, exclusionsInForce, ruleKey, withoutSources } from './exclusions-in-force.js';
import type {
  ActionRecord,
  DeviceRule,
  ExclusionChanges,
  Exclusions,
  ExclusionsInForce,
  Identity,
  RuleChange,
  UserRule,
} from './model.js';
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
  | {
      ok: true;
      /** The rules in force after the change, each with its source. */
      exclusions: ExclusionsInForce;
      changed: boolean;
      rule?: string;
      movedToCustomer: ActionRecord[];
    }
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

/** How many times a change is tried against concurrent ones before it gives up. */
export const EXCLUSION_CHANGE_ATTEMPTS = 5;

/** The body of `PUT /api/exclusions`: the policy shape; a `source` on a rule (as GET shows it) is ignored. */
const replaceSchema = z.preprocess(dropSources, exclusionsSchema);

/**
 * Change the exclusions (admins only; the REST API's admin token counts as an admin). The store keeps
 * run-time additions and removals against the policy file; each change is a compare-and-set on their
 * version, read again and retried when another admin changed them meanwhile, so no change is lost.
 * Proposed actions on assets now excluded become customer tasks at once.
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
  const file = deps.policy.exclusions;
  let apply: (current: ExclusionChanges, by: Identity, at: string) => ExclusionChanges;
  let detail: string;
  let described: string | undefined;
  if (change.op === 'replace') {
    const target = parseOrThrow(replaceSchema, change.exclusions);
    apply = (current, by, at) => replaced(file, current, target, by, at);
    detail = JSON.stringify(target);
  } else {
    const { device, user } = ruleFor(change.kind, change.value);
    described = device ? describeDeviceRule(device) : describeUserRule(user as UserRule);
    detail = described;
    const side = device ? 'devices' : 'users';
    const rule = (device ?? user) as object;
    apply = (current, by, at) => edited(file, current, side, rule, change.op, by, at);
  }

  for (let attempt = 1; attempt <= EXCLUSION_CHANGE_ATTEMPTS; attempt += 1) {
    const stored = await deps.store.getExclusionChanges();
    const current = asChanges(file, stored);
    const before = exclusionsInForce(file, current);
    const next = apply(current, actor.id, deps.clock.now().toISOString());
    const after = exclusionsInForce(file, next);
    const rule = described ? { rule: described } : {};
    if (sameRules(before, after)) {
      await deps.store.appendAudit(auditEntry(deps, actor, event, 'ok', `unchanged: ${detail}`));
      return { ok: true, exclusions: before, changed: false, movedToCustomer: [], ...rule };
    }
    const saved = await deps.store.saveExclusionChanges(
      next,
      stored.version,
      auditEntry(deps, actor, event, 'ok', detail),
    );
    if (!saved) continue;
    const movedToCustomer = await applyExclusions(deps, withoutSources(after), actor);
    return { ok: true, exclusions: after, changed: true, movedToCustomer, ...rule };
  }
  const message = `the exclusions kept changing meanwhile (${EXCLUSION_CHANGE_ATTEMPTS} attempts): nothing was changed, try again`;
  await deps.store.appendAudit(auditEntry(deps, actor, event, 'failed', `conflict: ${detail}`));
  throw new ConflictError(message);
}

/**
 * The rules in force (policy file ∪ added − removed), each with where it comes from: of `changes` when
 * the caller read them with what they decide about (one round trip), else as the store has them now.
 */
export async function currentExclusions(
  deps: Pick<CoreDeps, 'store' | 'policy'>,
  changes?: ExclusionChanges,
): Promise<ExclusionsInForce> {
  return exclusionsInForce(deps.policy.exclusions, changes ?? (await deps.store.getExclusionChanges()));
}

type Side = 'devices' | 'users';
type Changes = {
  version: number;
  added: Record<Side, RuleChange<object>[]>;
  removed: Record<Side, RuleChange<object>[]>;
};

/**
 * Add: no longer removed, and added unless the file has it. Remove: no longer added, and removed if
 * the file has it (the file cannot be edited at run time).
 */
function edited(
  file: Exclusions,
  current: ExclusionChanges,
  side: Side,
  rule: object,
  op: 'add' | 'remove',
  by: Identity,
  at: string,
): ExclusionChanges {
  const k = ruleKey(rule);
  const c = current as Changes;
  const inFile = (file[side] as object[]).some((r) => ruleKey(r) === k);
  const has = (list: RuleChange<object>[]) => list.some((r) => ruleKey(r.rule) === k);
  const without = (list: RuleChange<object>[]) => list.filter((r) => ruleKey(r.rule) !== k);
  let added = c.added[side];
  let removed = c.removed[side];
  if (op === 'add') {
    removed = without(removed);
    if (!inFile && !has(added)) added = [...added, { rule, by, at }];
  } else {
    added = without(added);
    if (inFile && !has(removed)) removed = [...removed, { rule, by, at }];
  }
  const next: Changes = {
    version: current.version,
    added: { ...c.added, [side]: added },
    removed: { ...c.removed, [side]: removed },
  };
  return next as ExclusionChanges;
}

/** The changes that make `target` the rules in force; rules already added or removed keep who and when. */
function replaced(
  file: Exclusions,
  current: ExclusionChanges,
  target: Exclusions,
  by: Identity,
  at: string,
): ExclusionChanges {
  const c = current as Changes;
  const side = (name: Side) => {
    const wanted = target[name] as object[];
    const fileRules = file[name] as object[];
    const fileKeys = new Set(fileRules.map(ruleKey));
    const wantedKeys = new Set(wanted.map(ruleKey));
    const kept = (list: RuleChange<object>[], rule: object) =>
      list.find((r) => ruleKey(r.rule) === ruleKey(rule)) ?? { rule, by, at };
    const added = unique(wanted.filter((r) => !fileKeys.has(ruleKey(r)))).map((r) => kept(c.added[name], r));
    const removed = fileRules.filter((r) => !wantedKeys.has(ruleKey(r))).map((r) => kept(c.removed[name], r));
    return { added, removed };
  };
  const devices = side('devices');
  const users = side('users');
  const next: Changes = {
    version: current.version,
    added: { devices: devices.added, users: users.added },
    removed: { devices: devices.removed, users: users.removed },
  };
  return next as ExclusionChanges;
}

function unique(rules: object[]): object[] {
  const seen = new Set<string>();
  return rules.filter((r) => {
    const k = ruleKey(r);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function sameRules(a: ExclusionsInForce, b: ExclusionsInForce): boolean {
  const keys = (e: ExclusionsInForce) => [
    ...e.devices.map((r) => `d${ruleKey(r)}`),
    ...e.users.map((r) => `u${ruleKey(r)}`),
  ];
  const left = new Set(keys(a));
  const right = keys(b);
  return left.size === right.length && right.every((k) => left.has(k));
}

/** Drops a `source` from each rule of a `PUT /api/exclusions` body, so GET's answer can be PUT back. */
function dropSources(input: unknown): unknown {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return input;
  const body: Record<string, unknown> = { ...input };
  for (const side of ['devices', 'users'] as const) {
    const list = body[side];
    if (!Array.isArray(list)) continue;
    body[side] = list.map((rule: unknown) => {
      if (typeof rule !== 'object' || rule === null || !('source' in rule)) return rule;
      const { source: _source, ...rest } = rule as Record<string, unknown>;
      return rest;
    });
  }
  return body;
}
