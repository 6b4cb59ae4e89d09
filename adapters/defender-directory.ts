import type { TokenCredential } from '@azure/identity';
import { z } from 'zod';
import { AssetLookupError } from '../core/errors.js';
import type { IncidentRecord } from '../core/model.js';
import type { AssetDirectory, DeviceFacts, UserGroups } from '../core/ports.js';
import { ApiClient, describeFailure, type HttpResult, type RetryOptions } from './defender-http.js';

/** Options of `DefenderAssetDirectory`. */
export interface DefenderAssetDirectoryOptions extends RetryOptions {
  credential: TokenCredential;
  /** `DEFENDER_API_URL`, may carry a path prefix. */
  defenderApiUrl: string;
  /** `GRAPH_API_URL`, may carry a path prefix. */
  graphApiUrl: string;
  /** How long a user's groups are reused (default 5 min). */
  groupCacheTtlMs?: number;
  /** Most `@odata.nextLink` pages read for one user; more fails closed (default 50). */
  maxGroupPages?: number;
  /** Injectable for tests (cache expiry). */
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

const groupPageSchema = z.looseObject({
  value: z.array(
    z.looseObject({
      '@odata.type': z.string().nullish(),
      id: z.string().min(1),
      displayName: z.string().nullish(),
    }),
  ),
  '@odata.nextLink': z.string().nullish(),
});

/**
 * Asset facts read live at decision time: device group, tags and DNS name from Defender for Endpoint,
 * transitive group membership from Microsoft Graph (cached briefly per user). Whatever cannot be read
 * throws `AssetLookupError`, so the exclusion check fails closed; evidence is never used instead.
 */
export class DefenderAssetDirectory implements AssetDirectory {
  private readonly mde: ApiClient;
  private readonly graph: ApiClient;
  private readonly ttlMs: number;
  private readonly maxPages: number;
  private readonly now: () => number;
  private readonly groups = new Map<string, { value: UserGroups; expiresAt: number }>();

  constructor(options: DefenderAssetDirectoryOptions) {
    const { credential, defenderApiUrl, graphApiUrl, ...rest } = options;
    this.mde = new ApiClient(credential, { service: 'Defender', baseUrl: defenderApiUrl }, rest);
    this.graph = new ApiClient(credential, { service: 'Microsoft Graph', baseUrl: graphApiUrl }, rest);
    this.ttlMs = options.groupCacheTtlMs ?? 5 * 60_000;
    this.maxPages = options.maxGroupPages ?? 50;
    this.now = options.now ?? Date.now;
  }

  async deviceFacts(
    device: { deviceId?: string; deviceName?: string },
    incident: IncidentRecord,
  ): Promise<DeviceFacts> {
    const name = device.deviceName?.toLowerCase();
    const id =
      device.deviceId ??
      (name ? incident.devices.find((d) => d.dnsName?.toLowerCase() === name)?.id : undefined);
    const machine = id
      ? await this.machineById(id)
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

  async userGroups(user: { userId?: string; upn?: string }): Promise<UserGroups> {
    const ref = user.userId ?? user.upn;
    if (!ref) throw new AssetLookupError('the action names no user id or UPN to look up in Microsoft Graph');
    const key = ref.toLowerCase();
    const cached = this.groups.get(key);
    if (cached && cached.expiresAt > this.now()) return cached.value;

    const ids: string[] = [];
    const names: string[] = [];
    // Not the `/microsoft.graph.group` cast: Graph documents it as an advanced query (ConsistencyLevel:
    // eventual), whose index may lag behind a membership added minutes ago. Roles and units are skipped.
    let next: string | undefined = this.graph.url(
      `/v1.0/users/${encodeURIComponent(ref)}/transitiveMemberOf`,
      {
        $select: 'id,displayName',
      },
    );
    let pages = 0;
    while (next) {
      if (pages++ >= this.maxPages) {
        throw new AssetLookupError(
          `${ref} belongs to more groups than ${this.maxPages} pages of Microsoft Graph results`,
        );
      }
      const result = await this.graph.send({ method: 'GET', path: next });
      if (!(result.kind === 'response' && result.ok)) {
        throw lookupError('Microsoft Graph', result, {
          permission: 'GroupMember.Read.All',
          notFound: `user ${ref} was not found in Microsoft Entra ID`,
          what: 'GET transitiveMemberOf',
        });
      }
      const page = groupPageSchema.safeParse(result.body);
      if (!page.success) {
        throw new AssetLookupError(
          `Microsoft Graph answered the group list of ${ref} in an unexpected shape`,
        );
      }
      for (const item of page.data.value) {
        const type = item['@odata.type'];
        if (type && type.toLowerCase() !== '#microsoft.graph.group') continue;
        // Without a group read permission Graph returns ids only; a name rule could then miss: fail closed.
        if (!item.displayName) {
          throw new AssetLookupError(
            `Microsoft Graph returned group ${item.id} of ${ref} without its name; the app registration needs GroupMember.Read.All`,
          );
        }
        ids.push(item.id);
        names.push(item.displayName);
      }
      const link = page.data['@odata.nextLink'] ?? undefined;
      if (link && !this.graph.sameOrigin(link)) {
        throw new AssetLookupError(`Microsoft Graph pointed the group list of ${ref} at another host`);
      }
      next = link;
    }
    const value = { ids, names };
    this.groups.set(key, { value, expiresAt: this.now() + this.ttlMs });
    return value;
  }

  private async machineById(id: string): Promise<Machine> {
    const result = await this.mde.send({ method: 'GET', path: `/api/machines/${encodeURIComponent(id)}` });
    if (!(result.kind === 'response' && result.ok)) {
      throw lookupError('Defender', result, {
        permission: 'Machine.Read.All',
        notFound: `device ${id} was not found in Defender`,
        what: 'GET machine',
      });
    }
    const machine = machineSchema.safeParse(result.body);
    if (!machine.success) throw new AssetLookupError(`Defender answered device ${id} in an unexpected shape`);
    return machine.data;
  }

  private async machineByName(name: string): Promise<Machine> {
    const result = await this.mde.send({
      method: 'GET',
      path: '/api/machines',
      query: { $filter: `computerDnsName eq '${name.toLowerCase().replaceAll("'", "''")}'` },
    });
    const what = { permission: 'Machine.Read.All', notFound: `device ${name} was not found in Defender` };
    if (!(result.kind === 'response' && result.ok)) {
      throw lookupError('Defender', result, { ...what, what: 'GET machines' });
    }
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

function lookupError(
  service: string,
  result: HttpResult,
  wording: Parameters<typeof describeFailure>[2],
): AssetLookupError {
  return new AssetLookupError(describeFailure(service, result, wording));
}
