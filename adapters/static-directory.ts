import { AssetLookupError } from '../core/errors.js';
import type { IncidentRecord } from '../core/model.js';
import type { AssetDirectory, DeviceFacts, UserGroups } from '../core/ports.js';

/**
 * Asset facts from the incident's own evidence (device group and tags) and an optional fixed map of
 * user groups (local mode). A device missing from the evidence cannot be checked: it fails closed.
 */
export class StaticAssetDirectory implements AssetDirectory {
  constructor(private readonly groupsByUser: Record<string, string[]> = {}) {}

  async deviceFacts(
    device: { deviceId?: string; deviceName?: string },
    incident: IncidentRecord,
  ): Promise<DeviceFacts> {
    const found = incident.devices.find(
      (d) =>
        (device.deviceId !== undefined && d.id === device.deviceId) ||
        (device.deviceName !== undefined && d.dnsName?.toLowerCase() === device.deviceName.toLowerCase()),
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

  async userGroups(user: { userId?: string; upn?: string }): Promise<UserGroups> {
    const names = [
      ...(user.userId ? (this.groupsByUser[user.userId] ?? []) : []),
      ...(user.upn ? (this.groupsByUser[user.upn.toLowerCase()] ?? []) : []),
    ];
    return { ids: [], names };
  }
}
