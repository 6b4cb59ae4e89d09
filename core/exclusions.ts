import { ACTION_CATALOGUE } from './actions.js';
import { AssetLookupError } from './errors.js';
import type { ActionRecord, DeviceRule, Exclusions, IncidentRecord, UserRule } from './model.js';
import { describeDeviceRule, describeUserRule } from './policy.js';
import type { AssetDirectory } from './ports.js';

/**
 * The answer to "may the experts act on this asset?".
 * `unverifiable` means a fact needed by a rule could not be had: callers must fail closed.
 */
export type ExclusionDecision =
  | { kind: 'allowed' }
  | { kind: 'excluded'; rule: string; asset: string }
  | { kind: 'unverifiable'; reason: string; asset: string };

/** How an action's target is named in messages: its DNS name or UPN where known, else its id. */
export function assetOf(target: ActionRecord['target'], incident?: IncidentRecord): string {
  const device = incident?.devices.find((d) => d.id === target.deviceId);
  return (
    target.deviceName ??
    device?.dnsName ??
    target.upn ??
    target.recipient ??
    target.deviceId ??
    target.userId ??
    'the asset'
  );
}

const same = (a: string | undefined, b: string | undefined) =>
  a !== undefined && b !== undefined && a.trim().toLowerCase() === b.trim().toLowerCase();

/** Decide whether an action's target is excluded, resolving group facts only when a rule needs them. */
export async function evaluateExclusion(
  exclusions: Exclusions,
  action: Pick<ActionRecord, 'type' | 'target'>,
  incident: IncidentRecord,
  directory: AssetDirectory,
): Promise<ExclusionDecision> {
  const kind = ACTION_CATALOGUE[action.type].kind;
  if (kind === 'device' || kind === 'deviceFile') {
    return evaluateDevice(exclusions.devices, action.target, incident, directory);
  }
  const user =
    kind === 'message'
      ? { upn: action.target.recipient }
      : { userId: action.target.userId, upn: action.target.upn };
  return evaluateUser(exclusions.users, user, incident, directory);
}

async function evaluateDevice(
  rules: DeviceRule[],
  target: { deviceId?: string; deviceName?: string },
  incident: IncidentRecord,
  directory: AssetDirectory,
): Promise<ExclusionDecision> {
  const known = incident.devices.find((d) => d.id === target.deviceId);
  const asset = target.deviceName ?? known?.dnsName ?? target.deviceId ?? 'unknown device';
  for (const rule of rules) {
    if ('id' in rule && same(rule.id, target.deviceId))
      return { kind: 'excluded', rule: describeDeviceRule(rule), asset };
    if ('name' in rule && (same(rule.name, target.deviceName) || same(rule.name, known?.dnsName))) {
      return { kind: 'excluded', rule: describeDeviceRule(rule), asset };
    }
  }
  const needsFacts = rules.some((r) => 'group' in r || 'tag' in r || 'name' in r);
  if (!needsFacts) return { kind: 'allowed' };
  let facts: Awaited<ReturnType<AssetDirectory['deviceFacts']>>;
  try {
    facts = await directory.deviceFacts(target, incident);
  } catch (error) {
    const nameKnown = target.deviceName !== undefined || known?.dnsName !== undefined;
    if (!rules.some((r) => 'group' in r || 'tag' in r) && nameKnown) return { kind: 'allowed' };
    return {
      kind: 'unverifiable',
      asset,
      reason: lookupReason(error, `the device group and tags of ${asset}`),
    };
  }
  for (const rule of rules) {
    if ('name' in rule && same(rule.name, facts.dnsName))
      return { kind: 'excluded', rule: describeDeviceRule(rule), asset };
    if ('group' in rule && same(rule.group, facts.group))
      return { kind: 'excluded', rule: describeDeviceRule(rule), asset };
    if ('tag' in rule && facts.tags.some((t) => same(rule.tag, t))) {
      return { kind: 'excluded', rule: describeDeviceRule(rule), asset };
    }
  }
  return { kind: 'allowed' };
}

async function evaluateUser(
  rules: UserRule[],
  user: { userId?: string; upn?: string },
  incident: IncidentRecord,
  directory: AssetDirectory,
): Promise<ExclusionDecision> {
  const known = incident.users.find(
    (u) => (user.userId !== undefined && u.id === user.userId) || same(u.upn, user.upn),
  );
  const upn = user.upn ?? known?.upn;
  const userId = user.userId ?? known?.id;
  const asset = upn ?? userId ?? 'unknown user';
  for (const rule of rules) {
    if ('upn' in rule && same(rule.upn, upn))
      return { kind: 'excluded', rule: describeUserRule(rule), asset };
    if ('id' in rule && same(rule.id, userId))
      return { kind: 'excluded', rule: describeUserRule(rule), asset };
  }
  const groupRules = rules.filter((r): r is { group: string } => 'group' in r);
  if (groupRules.length === 0) return { kind: 'allowed' };
  let groups: Awaited<ReturnType<AssetDirectory['userGroups']>>;
  try {
    groups = await directory.userGroups({ userId, upn }, incident);
  } catch (error) {
    return { kind: 'unverifiable', asset, reason: lookupReason(error, `the group membership of ${asset}`) };
  }
  for (const rule of groupRules) {
    if (groups.ids.some((g) => same(g, rule.group)) || groups.names.some((g) => same(g, rule.group))) {
      return { kind: 'excluded', rule: describeUserRule(rule), asset };
    }
  }
  return { kind: 'allowed' };
}

function lookupReason(error: unknown, what: string): string {
  const detail = error instanceof AssetLookupError || error instanceof Error ? error.message : String(error);
  return `could not verify ${what} (${detail}), so the exclusion policy cannot be checked`;
}
