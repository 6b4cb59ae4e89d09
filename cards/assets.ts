import { ACTION_CATALOGUE, type ActionType } from '../core/actions.js';
import { assetName, deviceNameOf } from '../core/asset-name.js';
import type { ActionTarget, IncidentRecord, Task } from '../core/model.js';
import { name, shortHash } from './text.js';
import type { AssetGroupView } from './view-types.js';

/** "Isolate device ws-042.contoso.com": what an action does and to which asset, in words. */
export function describeAction(
  type: ActionType,
  target: ActionTarget,
  incident?: Pick<IncidentRecord, 'devices' | 'users' | 'files' | 'messages'>,
): { text: string; asset: string } {
  const spec = ACTION_CATALOGUE[type];
  const asset = name(assetName(spec.kind, target, incident));
  if (type === 'stopAndQuarantineFile') {
    return { text: `Stop and quarantine ${fileName(target, incident)} on ${asset}`, asset };
  }
  if (type === 'releaseFileFromQuarantine') {
    return { text: `Release ${fileName(target, incident)} from quarantine on ${asset}`, asset };
  }
  return { text: `${spec.label} ${asset}`, asset };
}

/** The file an action is about, in words: its name when known, else its SHA-1. */
export function fileName(t: ActionTarget, incident?: Pick<IncidentRecord, 'files'>): string {
  const known = knownFileName(t, incident);
  if (known !== undefined) return known;
  return t.sha1 ? `the file with SHA-1 ${shortHash(name(t.sha1))}` : 'an unknown file';
}

/** The file's name, from the action or the incident's file evidence, when either has it. */
export function knownFileName(t: ActionTarget, incident?: Pick<IncidentRecord, 'files'>): string | undefined {
  const known = incident?.files.find((f) => t.sha1 && f.sha1?.toLowerCase() === t.sha1.toLowerCase());
  const label = t.fileName ?? known?.name;
  return label ? name(label) : undefined;
}

/**
 * The identifiers a person needs to find the asset in the portal or on the device: the device's name and
 * id, the user's sign-in name and object id, the email's network message id, the file's SHA-1 (left out
 * where the line already shows it).
 */
export function identifierLines(
  type: ActionType,
  t: ActionTarget,
  incident: Pick<IncidentRecord, 'devices'> | undefined,
  options: { sha1: boolean },
): string[] {
  const lines: string[] = [];
  const joined = (parts: (string | undefined)[]) => parts.filter(Boolean).join(' · ');
  switch (ACTION_CATALOGUE[type].kind) {
    case 'device':
    case 'deviceFile': {
      const dns = deviceNameOf(t, incident);
      const device = joined([
        dns ? `Device ${name(dns)}` : undefined,
        t.deviceId ? `device id ${name(t.deviceId)}` : undefined,
      ]);
      if (device) lines.push(device);
      if (options.sha1 && t.sha1)
        lines.push(joined([t.fileName ? `File ${name(t.fileName)}` : undefined, `SHA-1 ${name(t.sha1)}`]));
      break;
    }
    case 'user': {
      const user = joined([
        t.upn ? `User ${name(t.upn)}` : undefined,
        t.userId ? `object id ${name(t.userId)}` : undefined,
      ]);
      if (user) lines.push(user);
      break;
    }
    case 'message':
      if (t.networkMessageId) lines.push(`Network message id ${name(t.networkMessageId)}`);
      if (t.recipient) lines.push(`Recipient ${name(t.recipient)}`);
      break;
  }
  return lines;
}

/** The identifiers of a task's asset (device name and id, user, network message id, SHA-1), as text lines. */
export function taskIdentifiers(t: Pick<Task, 'type' | 'target'>): string[] {
  return identifierLines(t.type, t.target, undefined, { sha1: true });
}

/** The incident's assets by kind (devices, users, emails, files), each cut to `max` with "and N more". */
export function assetGroups(incident: IncidentRecord, max: number): AssetGroupView[] {
  const group = <T>(key: AssetGroupView['key'], title: string, all: T[], show: (x: T) => string) => ({
    key,
    title,
    total: all.length,
    items: all.slice(0, max).map(show),
    more: Math.max(0, all.length - max),
  });
  return [
    group('devices', 'Devices', incident.devices, (d) => {
      const label = name(d.dnsName ?? d.id);
      return d.group ? `${label} (${name(d.group)})` : label;
    }),
    group('users', 'Users and mailboxes', incident.users, (u) => {
      const upn = name(u.upn ?? u.id ?? 'unknown user');
      return u.displayName ? `${name(u.displayName)} (${upn})` : upn;
    }),
    group('messages', 'Emails', incident.messages, (m) => {
      const subject = m.subject ? `“${name(m.subject)}”` : `message ${name(m.networkMessageId)}`;
      return `${subject}${m.recipient ? ` to ${name(m.recipient)}` : ''}${m.sender ? ` from ${name(m.sender)}` : ''}`;
    }),
    group('files', 'Files', incident.files, (f) => {
      const label = name(f.name ?? f.path ?? 'unnamed file');
      if (f.sha1) return `${label} (SHA-1 ${shortHash(name(f.sha1))})`;
      return f.sha256 ? `${label} (SHA-256 ${shortHash(name(f.sha256))})` : label;
    }),
  ].filter((g) => g.total > 0);
}
