import type { TokenCredential } from '@azure/identity';
import { z } from 'zod';
import { AssetLookupError } from '../core/errors.js';
import type { AssetDirectory, DeviceFacts, DirectoryUser, UserReference } from '../core/ports.js';
import { ApiClient, odataString, type RetryOptions } from './defender-http.js';

/** Options of `DefenderAssetDirectory`. */
export interface DefenderAssetDirectoryOptions extends RetryOptions {
  credential: TokenCredential;
  /** `DEFENDER_API_URL`, may carry a path prefix. */
  defenderApiUrl: string;
  /** `GRAPH_API_URL`, may carry a path prefix. */
  graphApiUrl: string;
  /** How long a group display name's object id is reused (default 5 min; 0: never). Never membership. */
  groupNameTtlMs?: number;
  /** Injectable for tests (name cache expiry). */
  now?: () => number;
}

const machineSchema = z.looseObject({
  id: z.string().min(1),
  computerDnsName: z.string().nullish(),
  rbacGroupName: z.string().nullish(),
  machineTags: z.array(z.string()).nullish(),
});
type Machine = z.infer<typeof machineSchema>;

const machineListSchema = z.looseObject({ value: z.array(machineSchema) });

const USER_FIELDS = 'id,userPrincipalName,mail,proxyAddresses,onPremisesSyncEnabled';

const userSchema = z.looseObject({
  id: z.string().min(1),
  userPrincipalName: z.string().min(1),
  mail: z.string().nullish(),
  proxyAddresses: z.array(z.string()).nullish(),
  onPremisesSyncEnabled: z.boolean().nullish(),
});

const userListSchema = z.looseObject({
  value: z.array(userSchema),
  '@odata.nextLink': z.string().nullish(),
});

const groupListSchema = z.looseObject({
  value: z.array(z.looseObject({ id: z.string().min(1), displayName: z.string().nullish() })),
  '@odata.nextLink': z.string().nullish(),
});

const checkMemberGroupsSchema = z.looseObject({ value: z.array(z.string()) });

/** Graph's `checkMemberGroups` takes at most 20 group ids a call. */
const CHECK_MEMBER_GROUPS_MAX = 20;

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Asset facts read live at every decision: the device as Defender for Endpoint reports it, the user as
 * Microsoft Entra ID reports it (every identifier), and membership of the policy's groups through
 * `checkMemberGroups`. Nothing a decision reads is cached, except which object id a group display name
 * stands for. Whatever cannot be read throws `AssetLookupError`, so the check fails closed; the
 * incident's evidence is never used instead.
 */
export class DefenderAssetDirectory implements AssetDirectory {
  private readonly mde: ApiClient;
  private readonly graph: ApiClient;
  private readonly groupNameTtlMs: number;
  private readonly now: () => number;
  /**
   * Group display name -> object id. Kept because it is the same answer for every decision and every
   * user, and an object id never changes: membership (what moves during an incident) is always asked
   * live. Only a group renamed and another created under the old name within the TTL could be missed,
   * an admin change that a few minutes' delay covers. Failed or ambiguous lookups are never kept.
   */
  private readonly groupIds = new Map<string, { id: string; expiresAt: number }>();

  constructor(options: DefenderAssetDirectoryOptions) {
    const { credential, defenderApiUrl, graphApiUrl, ...rest } = options;
    this.mde = new ApiClient(credential, { service: 'Defender', baseUrl: defenderApiUrl }, rest);
    this.graph = new ApiClient(credential, { service: 'Microsoft Graph', baseUrl: graphApiUrl }, rest);
    this.groupNameTtlMs = options.groupNameTtlMs ?? 5 * 60_000;
    this.now = options.now ?? Date.now;
  }

  async deviceFacts(device: { deviceId?: string; deviceName?: string }): Promise<DeviceFacts> {
    const machine = device.deviceId
      ? await this.machineById(device.deviceId)
      : device.deviceName
        ? await this.machineByName(device.deviceName)
        : undefined;
    if (!machine) throw new AssetLookupError('the action names no device id or name to look up in Defender');
    return {
      id: machine.id,
      tags: machine.machineTags ?? [],
      ...(machine.computerDnsName ? { dnsName: machine.computerDnsName } : {}),
      ...(machine.rbacGroupName ? { group: machine.rbacGroupName } : {}),
    };
  }

  async resolveUser(user: UserReference): Promise<DirectoryUser> {
    if ('address' in user) return this.userByAddress(user.address);
    const ref = 'userId' in user ? user.userId : user.upn;
    const result = await this.graph.call(
      {
        method: 'GET',
        path: `/v1.0/users/${encodeURIComponent(ref)}`,
        query: { $select: USER_FIELDS },
      },
      {
        permission: 'User.Read.All',
        notFound: `user ${ref} was not found in Microsoft Entra ID`,
        what: 'GET user',
      },
    );
    if (!result.ok) throw new AssetLookupError(result.reason);
    const parsed = userSchema.safeParse(result.body);
    if (!parsed.success)
      throw new AssetLookupError(`Microsoft Graph answered user ${ref} in an unexpected shape`);
    return toDirectoryUser(parsed.data);
  }

  async memberOfGroups(user: DirectoryUser, groups: string[]): Promise<string[]> {
    const byId = new Map<string, string[]>();
    for (const group of groups) {
      const id = (await this.groupId(group)).toLowerCase();
      byId.set(id, [...(byId.get(id) ?? []), group]);
    }
    const ids = [...byId.keys()];
    const member = new Set<string>();
    for (let i = 0; i < ids.length; i += CHECK_MEMBER_GROUPS_MAX) {
      const groupIds = ids.slice(i, i + CHECK_MEMBER_GROUPS_MAX);
      const result = await this.graph.call(
        {
          method: 'POST',
          path: `/v1.0/users/${encodeURIComponent(user.id)}/checkMemberGroups`,
          body: { groupIds },
        },
        {
          permission: 'GroupMember.Read.All',
          notFound: `user ${user.userPrincipalName} or one of the policy's user groups was not found in Microsoft Entra ID`,
          what: 'POST checkMemberGroups',
        },
      );
      if (!result.ok) throw new AssetLookupError(result.reason);
      const parsed = checkMemberGroupsSchema.safeParse(result.body);
      if (!parsed.success) {
        throw new AssetLookupError(
          `Microsoft Graph answered the group membership of ${user.userPrincipalName} in an unexpected shape`,
        );
      }
      for (const id of parsed.data.value) member.add(id.toLowerCase());
    }
    return ids.filter((id) => member.has(id)).flatMap((id) => byId.get(id) ?? []);
  }

  /**
   * The one user an address reaches: as UPN, primary mail or any SMTP proxy address (alias, shared
   * mailbox). A plain `$filter` query, not an advanced one (`ConsistencyLevel: eventual`): the advanced
   * index may lag behind an alias added minutes ago, and a decision needs the directory as it is now.
   */
  private async userByAddress(address: string): Promise<DirectoryUser> {
    const a = address.trim();
    const result = await this.graph.call(
      {
        method: 'GET',
        path: '/v1.0/users',
        query: {
          $filter: `userPrincipalName eq ${odataString(a)} or mail eq ${odataString(a)} or proxyAddresses/any(p:p eq ${odataString(`smtp:${a}`)})`,
          $select: USER_FIELDS,
        },
      },
      {
        permission: 'User.Read.All',
        notFound: `no user with address ${address} was found in Microsoft Entra ID`,
        what: 'GET users',
      },
    );
    if (!result.ok) throw new AssetLookupError(result.reason);
    const list = userListSchema.safeParse(result.body);
    if (!list.success) {
      throw new AssetLookupError(
        `Microsoft Graph answered the user with address ${address} in an unexpected shape`,
      );
    }
    const [first, second] = list.data.value;
    if (!first) {
      throw new AssetLookupError(
        `no user in Microsoft Entra ID has the address ${address} (a group or external address cannot be checked)`,
      );
    }
    if (second || list.data['@odata.nextLink']) {
      throw new AssetLookupError(`more than one user in Microsoft Entra ID has the address ${address}`);
    }
    return toDirectoryUser(first);
  }

  /** The object id a user-group rule names: itself when it is one, else the one group of that name. */
  private async groupId(group: string): Promise<string> {
    if (GUID.test(group.trim())) return group.trim();
    const key = group.trim().toLowerCase();
    const cached = this.groupIds.get(key);
    if (cached && cached.expiresAt > this.now()) return cached.id;
    const rule = `user group rule "${group}"`;
    const result = await this.graph.call(
      {
        method: 'GET',
        path: '/v1.0/groups',
        query: { $filter: `displayName eq ${odataString(group.trim())}`, $select: 'id,displayName' },
      },
      {
        permission: 'GroupMember.Read.All',
        notFound: `the ${rule} could not be looked up in Microsoft Entra ID`,
        what: 'GET groups',
      },
    );
    if (!result.ok) throw new AssetLookupError(result.reason);
    const list = groupListSchema.safeParse(result.body);
    if (!list.success) {
      throw new AssetLookupError(`Microsoft Graph answered the groups of the ${rule} in an unexpected shape`);
    }
    const named = list.data.value.filter((g) => g.displayName?.trim().toLowerCase() === key);
    const [first] = named;
    if (!first) {
      throw new AssetLookupError(`the ${rule} names no group in Microsoft Entra ID (check its display name)`);
    }
    if (named.length > 1 || list.data['@odata.nextLink']) {
      throw new AssetLookupError(
        `the ${rule} names ${named.length} groups in Microsoft Entra ID; name the group by its object id instead`,
      );
    }
    if (this.groupNameTtlMs > 0) {
      this.groupIds.set(key, { id: first.id, expiresAt: this.now() + this.groupNameTtlMs });
    }
    return first.id;
  }

  private async machineById(id: string): Promise<Machine> {
    const result = await this.mde.call(
      { method: 'GET', path: `/api/machines/${encodeURIComponent(id)}` },
      {
        permission: 'Machine.Read.All',
        notFound: `device ${id} was not found in Defender`,
        what: 'GET machine',
      },
    );
    if (!result.ok) throw new AssetLookupError(result.reason);
    const machine = machineSchema.safeParse(result.body);
    if (!machine.success) throw new AssetLookupError(`Defender answered device ${id} in an unexpected shape`);
    return machine.data;
  }

  private async machineByName(name: string): Promise<Machine> {
    const what = { permission: 'Machine.Read.All', notFound: `device ${name} was not found in Defender` };
    const result = await this.mde.call(
      {
        method: 'GET',
        path: '/api/machines',
        query: { $filter: `computerDnsName eq ${odataString(name.toLowerCase())}` },
      },
      { ...what, what: 'GET machines' },
    );
    if (!result.ok) throw new AssetLookupError(result.reason);
    const list = machineListSchema.safeParse(result.body);
    if (!list.success)
      throw new AssetLookupError(`Defender answered the device ${name} in an unexpected shape`);
    const [first, second] = list.data.value;
    if (!first) throw new AssetLookupError(what.notFound);
    // Two devices with one name: their groups may differ, so no single answer is safe.
    if (second) throw new AssetLookupError(`more than one Defender device is named ${name}`);
    return first;
  }
}

function toDirectoryUser(user: z.infer<typeof userSchema>): DirectoryUser {
  return {
    id: user.id,
    userPrincipalName: user.userPrincipalName,
    proxyAddresses: user.proxyAddresses ?? [],
    ...(user.mail ? { mail: user.mail } : {}),
    ...(typeof user.onPremisesSyncEnabled === 'boolean'
      ? { onPremisesSyncEnabled: user.onPremisesSyncEnabled }
      : {}),
  };
}
