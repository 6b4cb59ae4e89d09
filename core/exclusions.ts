import { ACTION_CATALOGUE } from './actions.js';
import { assetName } from './asset-name.js';
import { AssetLookupError } from './errors.js';
import type { ActionRecord, DeviceRule, Exclusions, IncidentRecord, UserRule } from './model.js';
import { describeDeviceRule, describeUserRule } from './policy.js';
import type { AssetDirectory, DeviceFacts, DirectoryUser, UserReference } from './ports.js';

/** The identity a decision was made about, as Defender or Entra ID reports it: the one to act on. */
export interface DecisionSubject {
  /** Entra object id of the user resolved from the target's identifiers. */
  userId?: string;
  /** Defender machine id of the device looked up. */
  deviceId?: string;
}

/**
 * The answer to "may the experts act on this asset?".
 * `allowed` carries the `subject` the facts were read about when a rule needed them: the executor must
 * act on that identity, never on another name from the ingest body (no subject: no rule applied, so the
 * target acts as named). `unverifiable` means a fact needed by a rule could not be had: fail closed.
 */
export type ExclusionDecision =
  | { kind: 'allowed'; subject?: DecisionSubject }
  | { kind: 'excluded'; rule: string; asset: string }
  | { kind: 'unverifiable'; reason: string; asset: string };

const same = (a: string | undefined, b: string | undefined) =>
  a !== undefined && b !== undefined && a.trim().toLowerCase() === b.trim().toLowerCase();

/**
 * Every address a user can be named by: UPN, mail and SMTP proxy addresses (without their `SMTP:` /
 * `smtp:` prefix). A `upn` rule matches any of them: mail to an alias reaches the same person.
 */
export function userAddresses(user: DirectoryUser): string[] {
  const smtp = user.proxyAddresses
    .filter((p) => p.toLowerCase().startsWith('smtp:'))
    .map((p) => p.slice('smtp:'.length));
  return [user.userPrincipalName, ...(user.mail ? [user.mail] : []), ...smtp];
}

/** Decide whether an action's target is excluded, reading the facts each rule needs live. */
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
  const named: NamedUser =
    kind === 'message'
      ? { address: action.target.recipient }
      : { userId: action.target.userId, upn: action.target.upn };
  return evaluateUser(exclusions.users, named, incident, directory);
}

async function evaluateDevice(
  rules: DeviceRule[],
  target: { deviceId?: string; deviceName?: string },
  incident: IncidentRecord,
  directory: AssetDirectory,
): Promise<ExclusionDecision> {
  if (rules.length === 0) return { kind: 'allowed' };
  let asset = assetName('device', target, incident);
  // The id the action would be sent to is exact: a rule naming it excludes without asking Defender.
  for (const rule of rules) {
    if ('id' in rule && same(rule.id, target.deviceId)) {
      return { kind: 'excluded', rule: describeDeviceRule(rule), asset };
    }
  }
  const found = await identifyDevice(target, incident, directory, POLICY_UNCHECKED);
  if (found.kind === 'unverifiable') return found;
  const { facts } = found;
  asset = found.asset;
  for (const rule of rules) {
    if ('id' in rule && same(rule.id, facts.id)) {
      return { kind: 'excluded', rule: describeDeviceRule(rule), asset };
    }
    if ('name' in rule && same(rule.name, facts.dnsName)) {
      return { kind: 'excluded', rule: describeDeviceRule(rule), asset };
    }
    if ('group' in rule && same(rule.group, facts.group)) {
      return { kind: 'excluded', rule: describeDeviceRule(rule), asset };
    }
    if ('tag' in rule && facts.tags.some((t) => same(rule.tag, t))) {
      return { kind: 'excluded', rule: describeDeviceRule(rule), asset };
    }
  }
  if (facts.dnsName === undefined && rules.some((r) => 'name' in r)) {
    return {
      kind: 'unverifiable',
      asset,
      reason: `Defender reports no DNS name for device ${facts.id}, so its device name rules cannot be checked`,
    };
  }
  return { kind: 'allowed', subject: { deviceId: facts.id } };
}

/** Why a decision cannot be made when a fact is missing: the exclusion policy, or the asset itself. */
const POLICY_UNCHECKED = 'so the exclusion policy cannot be checked';
const SUBJECT_UNKNOWN = 'so the asset to act on cannot be identified';

type Unverifiable = Extract<ExclusionDecision, { kind: 'unverifiable' }>;

/**
 * The device as Defender reports it, checked to be the one the action names (same id, same host name).
 * `because` ends each reason: what cannot be done without it.
 */
async function identifyDevice(
  target: { deviceId?: string; deviceName?: string },
  incident: IncidentRecord,
  directory: AssetDirectory,
  because: string,
): Promise<{ kind: 'found'; facts: DeviceFacts; asset: string } | Unverifiable> {
  let asset = assetName('device', target, incident);
  if (target.deviceId === undefined && target.deviceName === undefined) {
    return {
      kind: 'unverifiable',
      asset,
      reason: `the action names no device, ${because}`,
    };
  }
  // Everything else is matched against the device as Defender reports it, never against the body's names.
  let facts: DeviceFacts;
  try {
    facts = await directory.deviceFacts(target, incident);
  } catch (error) {
    return {
      kind: 'unverifiable',
      asset,
      reason: lookupReason(error, `the name, group and tags of ${asset}`, because),
    };
  }
  asset = facts.dnsName ?? asset;
  if (target.deviceId !== undefined && !same(facts.id, target.deviceId)) {
    return {
      kind: 'unverifiable',
      asset,
      reason: `Defender answered device ${facts.id} when asked for ${target.deviceId}, ${because}`,
    };
  }
  if (
    target.deviceName !== undefined &&
    facts.dnsName !== undefined &&
    !sameHost(target.deviceName, facts.dnsName)
  ) {
    return {
      kind: 'unverifiable',
      asset,
      reason: `the action names device ${target.deviceName}, but Defender knows ${facts.id} as ${facts.dnsName}: they are two different devices, ${because}`,
    };
  }
  return { kind: 'found', facts, asset };
}

/** A short host name names the same device as its FQDN (`ws-042` and `ws-042.contoso.com`). */
function sameHost(a: string, b: string): boolean {
  if (same(a, b)) return true;
  const x = a.trim().toLowerCase();
  const y = b.trim().toLowerCase();
  return (!x.includes('.') && y.split('.')[0] === x) || (!y.includes('.') && x.split('.')[0] === y);
}

/** How the target names its user: object id and/or UPN, or, for a soft-delete, the recipient address. */
type NamedUser = { userId?: string; upn?: string } | { address: string | undefined };

async function evaluateUser(
  rules: UserRule[],
  named: NamedUser,
  incident: IncidentRecord,
  directory: AssetDirectory,
): Promise<ExclusionDecision> {
  if (rules.length === 0) return { kind: 'allowed' };
  const byAddress = 'address' in named;
  const upn = byAddress ? undefined : named.upn;
  const userId = byAddress ? undefined : named.userId;
  const address = byAddress ? named.address : undefined;
  let asset = assetName(byAddress ? 'message' : 'user', { recipient: address, upn, userId }, incident);
  // Whatever the body names, a rule matching it excludes: excluding is never the unsafe side.
  for (const rule of rules) {
    if ('upn' in rule && (same(rule.upn, upn) || same(rule.upn, address))) {
      return { kind: 'excluded', rule: describeUserRule(rule), asset };
    }
    if ('id' in rule && same(rule.id, userId)) {
      return { kind: 'excluded', rule: describeUserRule(rule), asset };
    }
  }
  const found = await identifyUser(named, asset, incident, directory, POLICY_UNCHECKED);
  if (found.kind === 'unverifiable') return found;
  const { user, addresses } = found;
  asset = found.asset;
  for (const rule of rules) {
    if ('upn' in rule && addresses.some((a) => same(rule.upn, a))) {
      return { kind: 'excluded', rule: describeUserRule(rule), asset };
    }
    if ('id' in rule && same(rule.id, user.id)) {
      return { kind: 'excluded', rule: describeUserRule(rule), asset };
    }
  }
  const groupRules = rules.filter((r): r is { group: string } => 'group' in r);
  if (groupRules.length > 0) {
    let memberOf: string[];
    try {
      memberOf = await directory.memberOfGroups(
        user,
        groupRules.map((r) => r.group),
      );
    } catch (error) {
      return { kind: 'unverifiable', asset, reason: lookupReason(error, `the group membership of ${asset}`) };
    }
    for (const rule of groupRules) {
      if (memberOf.some((g) => same(g, rule.group))) {
        return { kind: 'excluded', rule: describeUserRule(rule), asset };
      }
    }
  }
  return { kind: 'allowed', subject: { userId: user.id } };
}

/**
 * The user as Microsoft Entra ID reports it, checked to be the one the action names (the object id, or
 * one of its addresses). `because` ends each reason: what cannot be done without it.
 */
async function identifyUser(
  named: NamedUser,
  asset: string,
  incident: IncidentRecord,
  directory: AssetDirectory,
  because: string,
): Promise<{ kind: 'found'; user: DirectoryUser; addresses: string[]; asset: string } | Unverifiable> {
  const byAddress = 'address' in named;
  const upn = byAddress ? undefined : named.upn;
  const userId = byAddress ? undefined : named.userId;
  const address = byAddress ? named.address : undefined;
  const reference: UserReference | undefined =
    address !== undefined
      ? { address }
      : userId !== undefined
        ? { userId }
        : upn !== undefined
          ? { upn }
          : undefined;
  if (!reference) {
    return {
      kind: 'unverifiable',
      asset,
      reason: `the action names no user, ${because}`,
    };
  }
  let user: DirectoryUser;
  try {
    user = await directory.resolveUser(reference, incident);
  } catch (error) {
    return {
      kind: 'unverifiable',
      asset,
      reason: lookupReason(error, `who ${asset} is in Microsoft Entra ID`, because),
    };
  }
  const addresses = userAddresses(user);
  const mismatch =
    'userId' in reference
      ? !same(user.id, reference.userId)
      : !addresses.some((a) => same(a, 'upn' in reference ? reference.upn : reference.address));
  if (mismatch) {
    return {
      kind: 'unverifiable',
      asset,
      reason: `Microsoft Entra ID answered ${user.userPrincipalName} (${user.id}) when asked for ${asset}, ${because}`,
    };
  }
  // Both an object id and a UPN: the UPN must be one of that user's addresses, or they name two people.
  if (userId !== undefined && upn !== undefined && !addresses.some((a) => same(a, upn))) {
    return {
      kind: 'unverifiable',
      asset,
      reason: `the action names ${upn} and user id ${user.id}, which is ${user.userPrincipalName}: they name two different users, ${because}`,
    };
  }
  return { kind: 'found', user, addresses, asset: user.userPrincipalName };
}

/**
 * Resolve the identity an action's target names (the Defender device, the Entra user), with no exclusion
 * rule applied: a customer's own decision on their asset is not bound by the exclusions, but the bot
 * still acts only on the identity it resolved live. `allowed` always carries the subject; a fact that
 * cannot be read is `unverifiable` (fail closed: the action is not run).
 */
export async function resolveSubject(
  action: Pick<ActionRecord, 'type' | 'target'>,
  incident: IncidentRecord,
  directory: AssetDirectory,
): Promise<Exclude<ExclusionDecision, { kind: 'excluded' }>> {
  const kind = ACTION_CATALOGUE[action.type].kind;
  if (kind === 'device' || kind === 'deviceFile') {
    const found = await identifyDevice(action.target, incident, directory, SUBJECT_UNKNOWN);
    return found.kind === 'found' ? { kind: 'allowed', subject: { deviceId: found.facts.id } } : found;
  }
  const named: NamedUser =
    kind === 'message'
      ? { address: action.target.recipient }
      : { userId: action.target.userId, upn: action.target.upn };
  const asset = ('address' in named ? named.address : (named.upn ?? named.userId)) ?? 'unknown user';
  const found = await identifyUser(named, asset, incident, directory, SUBJECT_UNKNOWN);
  return found.kind === 'found' ? { kind: 'allowed', subject: { userId: found.user.id } } : found;
}

function lookupReason(error: unknown, what: string, because = POLICY_UNCHECKED): string {
  const detail = error instanceof AssetLookupError || error instanceof Error ? error.message : String(error);
  return `could not verify ${what} (${detail}), ${because}`;
}
