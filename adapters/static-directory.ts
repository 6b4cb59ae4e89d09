import { AssetLookupError } from '../core/errors.js';
import { userAddresses } from '../core/exclusions.js';
import type { IncidentRecord } from '../core/model.js';
import type { AssetDirectory, DeviceFacts, DirectoryUser, UserReference } from '../core/ports.js';

const same = (a: string, b: string) => a.trim().toLowerCase() === b.trim().toLowerCase();

/**
 * Asset facts for local mode and dry runs, where there is no Defender or Graph to ask: devices and users
 * from the incident's own evidence, plus fixed `users` and a fixed map of user groups (keyed by object id
 * or UPN). Whatever is in neither cannot be checked: it throws, so decisions fail closed.
 */
export class StaticAssetDirectory implements AssetDirectory {
  constructor(
    private readonly groupsByUser: Record<string, string[]> = {},
    private readonly users: DirectoryUser[] = [],
  ) {}

  async deviceFacts(
    device: { deviceId?: string; deviceName?: string },
    incident: IncidentRecord,
  ): Promise<DeviceFacts> {
    const found = incident.devices.find(
      (d) =>
        (device.deviceId !== undefined && d.id === device.deviceId) ||
        (device.deviceId === undefined &&
          device.deviceName !== undefined &&
          d.dnsName !== undefined &&
          same(d.dnsName, device.deviceName)),
    );
    if (!found) {
      throw new AssetLookupError(
        `device ${device.deviceName ?? device.deviceId} is not in the incident evidence`,
      );
    }
    return {
      id: found.id,
      tags: found.tags,
      ...(found.dnsName ? { dnsName: found.dnsName } : {}),
      ...(found.group ? { group: found.group } : {}),
    };
  }

  async resolveUser(user: UserReference, incident: IncidentRecord): Promise<DirectoryUser> {
    const fromEvidence = incident.users.flatMap((u) =>
      u.id && u.upn ? [{ id: u.id, userPrincipalName: u.upn, proxyAddresses: [] }] : [],
    );
    const named = 'userId' in user ? user.userId : 'upn' in user ? user.upn : user.address;
    const matches = [...this.users, ...fromEvidence].filter((u) =>
      'userId' in user
        ? same(u.id, user.userId)
        : 'upn' in user
          ? same(u.userPrincipalName, user.upn)
          : userAddresses(u).some((a) => same(a, user.address)),
    );
    const ids = new Set(matches.map((u) => u.id.toLowerCase()));
    const [first] = matches;
    if (!first) throw new AssetLookupError(`user ${named} is not in the incident evidence`);
    if (ids.size > 1) throw new AssetLookupError(`${named} names ${ids.size} different users`);
    return first;
  }

  async memberOfGroups(user: DirectoryUser, groups: string[]): Promise<string[]> {
    const mine = Object.entries(this.groupsByUser)
      .filter(([key]) => same(key, user.id) || same(key, user.userPrincipalName))
      .flatMap(([, names]) => names);
    return groups.filter((g) => mine.some((m) => same(m, g)));
  }
}
