/** The catalogue of the 14 managed-response actions (type names are part of the public contract). */

export const ACTION_TYPES = [
  'isolateDevice',
  'releaseDeviceFromIsolation',
  'runAntivirusScan',
  'stopAndQuarantineFile',
  'releaseFileFromQuarantine',
  'restrictAppExecution',
  'removeAppRestriction',
  'forcePasswordReset',
  'disableUser',
  'enableUser',
  'suspendUser',
  'unsuspendUser',
  'revokeUserTokens',
  'softDeleteEmails',
] as const;

export type ActionType = (typeof ACTION_TYPES)[number];

/** What an action is aimed at; exclusions are checked on the device or the user behind it. */
export type TargetKind = 'device' | 'deviceFile' | 'user' | 'message';

/** The action lifecycle; state names are part of the public contract. */
export const ACTION_STATES = [
  'proposed',
  'approved',
  'executing',
  'succeeded',
  'failed',
  'rejected',
  'customerPending',
  'doneByCustomer',
  'skippedByCustomer',
  'expertTask',
] as const;

export type ActionState = (typeof ACTION_STATES)[number];

export interface ActionSpec {
  kind: TargetKind;
  /** Imperative label used on cards: "Isolate device". */
  label: string;
  /** Past tense used once done: "Isolated". */
  done: string;
  /** Takes a business asset offline or out of reach: cards ask for confirmation. */
  destructive: boolean;
  /** Guidance for a customer who must carry the action out themselves. */
  guidance: string;
}

/** Restores what Defender quarantined under the threat name of custom file indicators (block). */
const CUSTOM_INDICATOR_RESTORE = 'MpCmdRun.exe -Restore -Name EUS:Win32/CustomEnterpriseBlock -All';

/** Releasing a file from quarantine by hand, step by step: Defender has no API for it. */
export function releaseFromQuarantineSteps(file: string, device: string): string[] {
  return [
    'Open the Microsoft Defender portal: Action center > History.',
    `Find the quarantine action for ${file} on ${device} and choose Undo.`,
    `If a custom indicator blocked it, on the device as administrator run "${CUSTOM_INDICATOR_RESTORE}".`,
    'Warning: that command restores every file a custom indicator blocked on the device in the last 30 days, not only this one.',
  ];
}

const DEVICE_PORTAL =
  'In the Microsoft Defender portal open Assets > Devices, select the device, and use the action menu';

export const ACTION_CATALOGUE: Record<ActionType, ActionSpec> = {
  isolateDevice: {
    kind: 'device',
    label: 'Isolate device',
    done: 'Isolated',
    destructive: true,
    guidance: `${DEVICE_PORTAL} (… > Isolate device, full isolation).`,
  },
  releaseDeviceFromIsolation: {
    kind: 'device',
    label: 'Release device from isolation',
    done: 'Released from isolation',
    destructive: false,
    guidance: `${DEVICE_PORTAL} (Release from isolation).`,
  },
  runAntivirusScan: {
    kind: 'device',
    label: 'Run antivirus scan on',
    done: 'Scanned',
    destructive: false,
    guidance: `${DEVICE_PORTAL} (Run antivirus scan, quick scan).`,
  },
  stopAndQuarantineFile: {
    kind: 'deviceFile',
    label: 'Stop and quarantine file on',
    done: 'Quarantined',
    destructive: false,
    guidance:
      'In the Microsoft Defender portal open the file page (search by SHA-1) and choose Stop and quarantine file.',
  },
  releaseFileFromQuarantine: {
    kind: 'deviceFile',
    label: 'Release file from quarantine on',
    done: 'Released from quarantine',
    destructive: false,
    guidance: `Defender has no API for this. ${releaseFromQuarantineSteps('this file', 'the device').join(' ')}`,
  },
  restrictAppExecution: {
    kind: 'device',
    label: 'Restrict app execution on',
    done: 'Restricted',
    destructive: true,
    guidance: `${DEVICE_PORTAL} (Restrict app execution).`,
  },
  removeAppRestriction: {
    kind: 'device',
    label: 'Remove app restriction on',
    done: 'Restriction removed',
    destructive: false,
    guidance: `${DEVICE_PORTAL} (Remove app restrictions).`,
  },
  forcePasswordReset: {
    kind: 'user',
    label: 'Force password reset for',
    done: 'Password reset forced',
    destructive: false,
    guidance:
      'In the Microsoft Entra admin center open Users, select the user, and choose Reset password (require a change at next sign-in).',
  },
  disableUser: {
    kind: 'user',
    label: 'Disable user',
    done: 'Disabled',
    destructive: true,
    guidance:
      'In the Microsoft Entra admin center open Users, select the user, and set "Account enabled" to No.',
  },
  enableUser: {
    kind: 'user',
    label: 'Enable user',
    done: 'Enabled',
    destructive: false,
    guidance:
      'In the Microsoft Entra admin center open Users, select the user, and set "Account enabled" to Yes.',
  },
  suspendUser: {
    kind: 'user',
    label: 'Suspend user',
    done: 'Suspended',
    destructive: true,
    guidance:
      'In the Microsoft Entra admin center block sign-in for the user (Account enabled: No) and choose Revoke sessions.',
  },
  unsuspendUser: {
    kind: 'user',
    label: 'Unsuspend user',
    done: 'Unsuspended',
    destructive: false,
    guidance:
      'In the Microsoft Entra admin center open Users, select the user, and set "Account enabled" to Yes.',
  },
  revokeUserTokens: {
    kind: 'user',
    label: 'Revoke sign-in sessions of',
    done: 'Sessions revoked',
    destructive: false,
    guidance: 'In the Microsoft Entra admin center open Users, select the user, and choose Revoke sessions.',
  },
  softDeleteEmails: {
    kind: 'message',
    label: 'Soft-delete email to',
    done: 'Soft-deleted',
    destructive: true,
    guidance:
      'In the Microsoft Defender portal open Email & collaboration > Explorer, find the message by its network message id, and choose Take action > Soft delete.',
  },
};

/**
 * The antivirus scans Defender runs (`ScanType` of `runAntiVirusScan`): the expert chooses one when
 * approving, Quick unless they choose Full.
 */
/**
 * Whether the bot can carry an action out against Defender or Graph. Releasing a file from quarantine
 * has no public API: an expert does it by hand (`expertTask`), and nobody can have the bot run it.
 */
export function hasApi(type: ActionType): boolean {
  return type !== 'releaseFileFromQuarantine';
}

export const SCAN_TYPES = ['Quick', 'Full'] as const;

export type ScanType = (typeof SCAN_TYPES)[number];
