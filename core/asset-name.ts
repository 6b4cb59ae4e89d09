import { ACTION_CATALOGUE, type TargetKind } from './actions.js';
import type { ActionRecord, ActionTarget, IncidentRecord } from './model.js';

/** The incident evidence an asset's name may come from. */
export type AssetEvidence = Pick<IncidentRecord, 'devices' | 'users'>;

/** The device's DNS name: as the action names it, else as the incident's evidence knows the device id. */
export function deviceNameOf(
  target: Pick<ActionTarget, 'deviceId' | 'deviceName'>,
  incident?: Pick<IncidentRecord, 'devices'>,
): string | undefined {
  return target.deviceName ?? incident?.devices.find((d) => d.id === target.deviceId)?.dnsName;
}

/**
 * How an asset is named in messages, tasks and on cards: the device's DNS name, the user's UPN (or
 * display name), the email's recipient; its id when nothing better is known.
 */
export function assetName(kind: TargetKind, target: ActionTarget, incident?: AssetEvidence): string {
  switch (kind) {
    case 'device':
    case 'deviceFile':
      return deviceNameOf(target, incident) ?? target.deviceId ?? 'unknown device';
    case 'user': {
      const user = incident?.users.find(
        (u) => (target.userId && u.id === target.userId) || (target.upn && u.upn === target.upn),
      );
      return target.upn ?? user?.upn ?? user?.displayName ?? target.userId ?? 'unknown user';
    }
    case 'message':
      return target.recipient ?? 'unknown recipient';
  }
}

/** The name of an action's asset (see `assetName`). */
export function assetOf(action: Pick<ActionRecord, 'type' | 'target'>, incident?: AssetEvidence): string {
  return assetName(ACTION_CATALOGUE[action.type].kind, action.target, incident);
}
