import { z } from 'zod';
import { ACTION_CATALOGUE, ACTION_TYPES, type ActionType } from './actions.js';
import type {
  ActionTarget,
  DeviceAsset,
  FileAsset,
  IncidentRecord,
  MessageAsset,
  Severity,
  UserAsset,
} from './model.js';
import { parseOrThrow } from './validation.js';

/** Ids we put in keys, task ids and button values: no spaces, no separators of our own. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const idSchema = z
  .union([z.string(), z.number().int().nonnegative()])
  .transform((v) => String(v))
  .pipe(z.string().regex(ID_PATTERN, 'must be 1-128 letters, digits, ".", "_" or "-"'));

const text = (max: number) => z.string().max(max, `must be at most ${max} characters`);
const optionalText = (max: number) =>
  text(max)
    .nullish()
    .transform((v) => v ?? undefined);

const SEVERITIES: Severity[] = ['unknown', 'informational', 'low', 'medium', 'high'];
/** Graph documents camelCase enums, its examples show PascalCase: compare case-insensitively. */
const severitySchema = z
  .string()
  .nullish()
  .transform((v): Severity => {
    const lower = (v ?? 'unknown').toLowerCase();
    return (SEVERITIES as string[]).includes(lower) ? (lower as Severity) : 'unknown';
  });

const odataType = z.string().nullish();
/** A list Graph may leave out or send as null: read as empty. */
const listOf = <T extends z.ZodType>(item: T) =>
  z
    .array(item)
    .nullish()
    .transform((v) => v ?? []);
const stringList = listOf(z.string());

const userAccountSchema = z.object({
  azureAdUserId: z.string().nullish(),
  userPrincipalName: z.string().nullish(),
  displayName: z.string().nullish(),
});

const evidenceSchema = z.object({
  '@odata.type': odataType,
  tags: stringList,
  mdeDeviceId: z.string().nullish(),
  deviceDnsName: z.string().nullish(),
  rbacGroupName: z.string().nullish(),
  userAccount: userAccountSchema.nullish(),
  upn: z.string().nullish(),
  primaryAddress: z.string().nullish(),
  fileDetails: z
    .object({
      sha1: z.string().nullish(),
      sha256: z.string().nullish(),
      fileName: z.string().nullish(),
      filePath: z.string().nullish(),
    })
    .nullish(),
  networkMessageId: z.string().nullish(),
  subject: z.string().nullish(),
  recipientEmailAddress: z.string().nullish(),
  p1Sender: z.object({ emailAddress: z.string().nullish() }).nullish(),
});

const alertSchema = z.object({
  id: z.string().nullish(),
  title: z.string().nullish(),
  evidence: listOf(evidenceSchema),
});

const graphIncidentSchema = z.object({
  id: idSchema,
  tenantId: z.string().nullish(),
  displayName: optionalText(1_000),
  description: optionalText(100_000),
  severity: severitySchema,
  status: z.string().nullish(),
  incidentWebUrl: z.url({ protocol: /^https?$/ }).nullish(),
  createdDateTime: z.string().nullish(),
  lastUpdateDateTime: z.string().nullish(),
  alerts: listOf(alertSchema),
});

const sha1Schema = z.string().regex(/^[0-9a-fA-F]{40}$/, 'must be a 40-character hexadecimal SHA-1');
const nonEmpty = (max: number) => z.string().trim().min(1, 'must not be empty').max(max);

const targetSchema = z.object({
  deviceId: nonEmpty(128).optional(),
  deviceName: nonEmpty(255).optional(),
  sha1: sha1Schema.optional(),
  fileName: nonEmpty(255).optional(),
  userId: nonEmpty(128).optional(),
  upn: nonEmpty(320).optional(),
  networkMessageId: nonEmpty(128).optional(),
  recipient: nonEmpty(320).optional(),
});

const actionSchema = z
  .object({
    id: idSchema,
    type: z.enum(ACTION_TYPES, { error: `must be one of ${ACTION_TYPES.join(', ')}` }),
    status: z
      .string()
      .transform((v) => v.toLowerCase())
      .pipe(z.enum(['proposed', 'completed'], { error: 'must be "proposed" or "completed"' }))
      .default('proposed'),
    target: targetSchema,
    reason: optionalText(2_000),
    completedBy: optionalText(200),
    completedAt: optionalText(64),
  })
  .superRefine((action, ctx) => {
    for (const field of requiredTargetFields(action.type)) {
      const value = field.split('|').some((f) => action.target[f as keyof ActionTarget] !== undefined);
      if (!value) {
        ctx.addIssue({
          code: 'custom',
          path: ['target', field.split('|')[0] ?? field],
          message: `is required for ${action.type}${field.includes('|') ? ` (or ${field.split('|').slice(1).join(', ')})` : ''}`,
        });
      }
    }
  });

function requiredTargetFields(type: ActionType): string[] {
  switch (ACTION_CATALOGUE[type].kind) {
    case 'device':
      return ['deviceId'];
    case 'deviceFile':
      return ['deviceId', 'sha1'];
    case 'user':
      return ['userId|upn'];
    case 'message':
      return ['networkMessageId', 'recipient'];
  }
}

/** The fixed ingest body of `POST /api/incidents`. */
export const ingestBodySchema = z.object({
  incident: graphIncidentSchema,
  managedResponse: z.object({
    summary: optionalText(200_000),
    actions: z
      .array(actionSchema)
      .max(1_000, 'at most 1,000 actions per incident')
      .default([])
      .superRefine((actions, ctx) => {
        const seen = new Set<string>();
        actions.forEach((a, i) => {
          if (seen.has(a.id))
            ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `duplicate action id "${a.id}"` });
          seen.add(a.id);
        });
      }),
  }),
});

export type IngestBody = z.output<typeof ingestBodySchema>;
export type IngestAction = IngestBody['managedResponse']['actions'][number];

/** Validate an ingest body; throws InvalidInputError naming each bad field (`incident.id`). */
export function parseIngestBody(body: unknown): IngestBody {
  return parseOrThrow(ingestBodySchema, body);
}

function typeOf(evidence: { '@odata.type'?: string | null | undefined }): string {
  const t = evidence['@odata.type'] ?? '';
  return t.slice(t.lastIndexOf('.') + 1).toLowerCase();
}

/** Hosts of the Microsoft Defender portal: commercial and GCC, GCC High, DoD (plus `*.security.microsoft.com`). */
export const DEFENDER_PORTAL_HOSTS: readonly string[] = [
  'security.microsoft.com',
  'security.microsoft.us',
  'security.apps.mil',
];

/**
 * True when `url` may be shown as an incident's portal link: https, on a Defender portal host or one
 * of `extraHosts` (the bot's own PUBLIC_URL host), default port, no credentials. Anything else on a
 * card would be a link chosen by whoever sent the incident.
 */
export function isPortalUrl(url: string | undefined, extraHosts: readonly string[] = []): boolean {
  if (!url) return false;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (parsed.protocol !== 'https:' || parsed.port !== '' || parsed.username || parsed.password) return false;
  const host = parsed.hostname.toLowerCase();
  return (
    DEFENDER_PORTAL_HOSTS.includes(host) ||
    host.endsWith('.security.microsoft.com') ||
    extraHosts.some((h) => h.toLowerCase() === host)
  );
}

/** The Defender portal page of an incident, built from its id. */
export function defaultPortalUrl(incidentId: string): string {
  return `https://security.microsoft.com/incidents/${encodeURIComponent(incidentId)}`;
}

/** The incident's portal link: `incidentWebUrl` when it is a portal URL (see isPortalUrl), else the default. */
export function portalUrlOf(
  incidentId: string,
  webUrl: string | undefined,
  extraHosts: readonly string[] = [],
): string {
  return webUrl && isPortalUrl(webUrl, extraHosts) ? webUrl : defaultPortalUrl(incidentId);
}

/**
 * Turn the Graph incident into the bot's record, collecting assets from the alerts' evidence.
 * `portalHosts`: hosts allowed for the portal link besides the Defender portal's.
 */
export function toIncidentRecord(
  body: IngestBody,
  receivedAt: string,
  options: { portalHosts?: readonly string[] } = {},
): IncidentRecord {
  const g = body.incident;
  const devices = new Map<string, DeviceAsset>();
  const users = new Map<string, UserAsset>();
  const files = new Map<string, FileAsset>();
  const messages = new Map<string, MessageAsset>();

  const addUser = (u: UserAsset) => {
    const key = u.id ?? u.upn?.toLowerCase();
    if (!key) return;
    const known = users.get(key);
    users.set(key, { ...known, ...Object.fromEntries(Object.entries(u).filter(([, v]) => v !== undefined)) });
  };

  for (const alert of g.alerts) {
    for (const ev of alert.evidence) {
      switch (typeOf(ev)) {
        case 'deviceevidence':
          if (ev.mdeDeviceId) {
            devices.set(ev.mdeDeviceId, {
              id: ev.mdeDeviceId,
              dnsName: ev.deviceDnsName ?? undefined,
              group: ev.rbacGroupName ?? undefined,
              tags: ev.tags,
            });
          }
          break;
        case 'userevidence':
        case 'mailboxevidence': {
          const acc = ev.userAccount;
          addUser({
            id: acc?.azureAdUserId ?? undefined,
            upn: acc?.userPrincipalName ?? ev.upn ?? ev.primaryAddress ?? undefined,
            displayName: acc?.displayName ?? undefined,
          });
          break;
        }
        case 'fileevidence': {
          const d = ev.fileDetails;
          const key = d?.sha1 ?? d?.sha256;
          if (d && key) {
            files.set(key, {
              sha1: d.sha1 ?? undefined,
              sha256: d.sha256 ?? undefined,
              name: d.fileName ?? undefined,
              path: d.filePath ?? undefined,
              deviceId: ev.mdeDeviceId ?? undefined,
            });
          }
          break;
        }
        case 'analyzedmessageevidence':
          if (ev.networkMessageId) {
            messages.set(ev.networkMessageId, {
              networkMessageId: ev.networkMessageId,
              subject: ev.subject ?? undefined,
              recipient: ev.recipientEmailAddress ?? undefined,
              sender: ev.p1Sender?.emailAddress ?? undefined,
            });
          }
          break;
        default:
          break;
      }
    }
  }

  return {
    id: g.id,
    tenantId: g.tenantId ?? undefined,
    title: g.displayName ?? `Incident ${g.id}`,
    severity: g.severity,
    status: g.status ?? 'active',
    portalUrl: portalUrlOf(g.id, g.incidentWebUrl ?? undefined, options.portalHosts),
    summary: body.managedResponse.summary ?? g.description ?? '',
    createdAt: g.createdDateTime ?? receivedAt,
    updatedAt: g.lastUpdateDateTime ?? receivedAt,
    receivedAt,
    devices: [...devices.values()],
    users: [...users.values()],
    files: [...files.values()],
    messages: [...messages.values()],
  };
}
