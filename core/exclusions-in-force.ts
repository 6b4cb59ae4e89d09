import type {
  ExclusionChanges,
  Exclusions,
  ExclusionsInForce,
  Identity,
  RuleChange,
  SourcedRule,
} from './model.js';

/** The source of a rule read from the policy file. */
export const POLICY_FILE_SOURCE = 'policy file';

/** Who the rules of an earlier version's whole stored list are attributed to (it kept no names). */
const LEGACY_BY: Identity = 'a run-time change kept by an earlier version of the bot';

/** A rule's identity: its kind and value, compared case-insensitively; `source` is not part of it. */
export function ruleKey(rule: object): string {
  return JSON.stringify(
    Object.entries(rule)
      .filter(([k]) => k !== 'source')
      .map(([k, v]) => [k, String(v).trim().toLowerCase()]),
  );
}

/** `added by slack:U0ADMIN1 at 2026-11-27T10:00:00.000Z` */
export function describeSource(change: RuleChange<object>): string {
  return `added by ${change.by}${change.at ? ` at ${change.at}` : ''}`;
}

/**
 * The changes as additions and removals. A store written by an earlier version holds the whole list that
 * replaced the policy file's instead: it is read as what it added to and removed from the file.
 */
export function asChanges(policyFile: Exclusions, changes: ExclusionChanges): ExclusionChanges {
  const { legacy, ...rest } = changes;
  if (!legacy || changes.version !== 0) return rest;
  const minus = <R extends object>(a: R[], b: R[]) => {
    const keys = new Set(b.map(ruleKey));
    return a.filter((r) => !keys.has(ruleKey(r))).map((rule) => ({ rule, by: LEGACY_BY, at: '' }));
  };
  return {
    version: 0,
    added: {
      devices: minus(legacy.devices, policyFile.devices),
      users: minus(legacy.users, policyFile.users),
    },
    removed: {
      devices: minus(policyFile.devices, legacy.devices),
      users: minus(policyFile.users, legacy.users),
    },
  };
}

/**
 * The rules in force, each with where it comes from: (policy file ∪ added) − removed, file rules first,
 * then additions in the order they were made. A rule in both the file and the additions shows once.
 */
export function exclusionsInForce(policyFile: Exclusions, changes: ExclusionChanges): ExclusionsInForce {
  const { added, removed } = asChanges(policyFile, changes);
  return {
    devices: inForce(policyFile.devices, added.devices, removed.devices),
    users: inForce(policyFile.users, added.users, removed.users),
  };
}

/** Drops the `source` of each rule. */
export function withoutSources(exclusions: ExclusionsInForce): Exclusions {
  return {
    devices: exclusions.devices.map(({ source: _source, ...rule }) => rule),
    users: exclusions.users.map(({ source: _source, ...rule }) => rule),
  } as Exclusions;
}

function inForce<R extends object>(
  file: R[],
  added: RuleChange<R>[],
  removed: RuleChange<R>[],
): SourcedRule<R>[] {
  const gone = new Set(removed.map((r) => ruleKey(r.rule)));
  const seen = new Set<string>();
  const rules: SourcedRule<R>[] = [];
  const take = (rule: R, source: string) => {
    const k = ruleKey(rule);
    if (gone.has(k) || seen.has(k)) return;
    seen.add(k);
    rules.push({ ...rule, source });
  };
  for (const rule of file) take(rule, POLICY_FILE_SOURCE);
  for (const change of added) take(change.rule, describeSource(change));
  return rules;
}
