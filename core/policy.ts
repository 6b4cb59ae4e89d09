import { z } from 'zod';
import type { Exclusions, Identity, Roles } from './model.js';
import { WEBHOOK_EVENT_TYPES } from './webhook-events.js';

const identity = z
  .string()
  .regex(/^(slack|teams):\S+$/, 'must be "slack:<user id>" or "teams:<aadObjectId>"');

const oneKey = <K extends string>(key: K) =>
  z.strictObject({ [key]: z.string().trim().min(1, 'must not be empty') } as Record<K, z.ZodString>);

/** A device exclusion rule: exactly one of id, name, group, tag. */
export const deviceRuleSchema = z.union([oneKey('id'), oneKey('name'), oneKey('group'), oneKey('tag')], {
  error: 'each device rule has exactly one of id, name, group, tag',
});
/** A user exclusion rule: exactly one of upn, id, group. */
export const userRuleSchema = z.union([oneKey('upn'), oneKey('id'), oneKey('group')], {
  error: 'each user rule has exactly one of upn, id, group',
});

export const exclusionsSchema = z.strictObject({
  devices: z.array(deviceRuleSchema).max(10_000).default([]),
  users: z.array(userRuleSchema).max(10_000).default([]),
});

/**
 * The tag Microsoft Defender Experts puts on the incidents it manages (in the incident's `systemTags`):
 * without `sources.graph.filter`, the poller takes only those.
 */
export const MANAGED_SERVICE_TAG = 'Defender Experts';

/**
 * Which polled Graph incidents become cards: those carrying one of `tags` (custom or system tags) and,
 * when `assignedTo` is given, assigned to it. One of the two is required: the poller never takes every
 * incident of the tenant.
 */
export const graphFilterSchema = z
  .strictObject({
    tags: z.array(z.string().trim().min(1, 'must not be empty')).min(1).max(100).optional(),
    assignedTo: z.string().trim().min(1, 'must not be empty').max(256).optional(),
  })
  .refine((filter) => filter.tags !== undefined || filter.assignedTo !== undefined, {
    error: 'needs tags or assignedTo (without them every incident of the tenant would become a card)',
  });

export type GraphIncidentFilter = z.output<typeof graphFilterSchema>;

const sourcesSchema = z.strictObject({
  graph: z.strictObject({ filter: graphFilterSchema.optional() }).optional(),
});

/** `${NAME}`: the environment variable a webhook secret is read from at start. */
export const SECRET_REFERENCE = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/;

/**
 * One webhook of the policy. The secret is never written in the file: `secret` names the environment
 * variable holding it, read at start (bot/config.ts), which also checks the URL's scheme.
 */
export const webhookSchema = z.strictObject({
  url: z.url({
    protocol: /^https?$/,
    error: 'must be an http(s) URL, e.g. https://itsm.contoso.com/hooks/mdr',
  }),
  secret: z.string().regex(
    SECRET_REFERENCE,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the policy's own ${NAME} syntax, not a template
    'must be ${VARIABLE_NAME}: the secret is read from that environment variable, never written here',
  ),
  events: z
    .array(z.enum(WEBHOOK_EVENT_TYPES, { error: `must be one of ${WEBHOOK_EVENT_TYPES.join(', ')}` }))
    .min(1, 'needs at least one event')
    .transform((events) => [...new Set(events)]),
});

/** The policy file (`POLICY_FILE`); its shape is part of the public contract. */
export const policySchema = z.strictObject({
  roles: z
    .strictObject({
      experts: z.array(identity).default([]),
      admins: z.array(identity).default([]),
    })
    .default({ experts: [], admins: [] }),
  exclusions: exclusionsSchema.default({ devices: [], users: [] }),
  channels: z
    .strictObject({
      slack: z.string().trim().min(1).optional(),
      teams: z.string().trim().min(1).optional(),
    })
    .default({}),
  reminders: z
    .strictObject({
      pendingTaskHours: z
        .number()
        .positive()
        .max(24 * 365)
        .default(24),
    })
    .default({ pendingTaskHours: 24 }),
  sources: sourcesSchema.optional(),
  notifications: z
    .strictObject({
      email: z
        .array(z.email('must be an email address, e.g. soc@contoso.com'))
        .max(100, 'at most 100 addresses')
        .default([]),
      /**
       * With INCIDENT_WRITEBACK: the Graph incident's `assignedTo` while customer tasks are open (the
       * customer's queue, free text as Defender shows it, e.g. "Contoso SOC").
       */
      assignTo: z.string().trim().min(1, 'must not be empty').max(256, 'at most 256 characters').optional(),
      /** ITSM / SIEM receivers of signed JSON events (see `webhookSchema`). */
      webhooks: z
        .array(webhookSchema)
        .max(20, 'at most 20 webhooks')
        .refine((hooks) => new Set(hooks.map((h) => h.url)).size === hooks.length, {
          error: 'each url may appear once (give one webhook all the events it wants)',
        })
        .optional(),
    })
    .optional(),
});

export type Policy = z.output<typeof policySchema>;

/** The Graph poll's filter in force: the policy's, else incidents tagged for the managed service. */
export function graphFilterOf(policy: Pick<Policy, 'sources'>): GraphIncidentFilter {
  return policy.sources?.graph?.filter ?? { tags: [MANAGED_SERVICE_TAG] };
}

/**
 * Whether a Graph security incident is one the filter selects: a tag among its `customTags`,
 * `systemTags` (or `tags`, as some documented examples name them), compared without regard to case,
 * and the owner in `assignedTo`. Anything unreadable does not match.
 */
export function selectsIncident(filter: GraphIncidentFilter, incident: unknown): boolean {
  if (typeof incident !== 'object' || incident === null) return false;
  const fields = incident as Record<string, unknown>;
  if (filter.assignedTo !== undefined) {
    const owner = fields.assignedTo;
    if (typeof owner !== 'string' || owner.trim().toLowerCase() !== filter.assignedTo.toLowerCase())
      return false;
  }
  if (filter.tags === undefined) return true;
  const wanted = new Set(filter.tags.map((tag) => tag.toLowerCase()));
  const carried = [fields.customTags, fields.systemTags, fields.tags].flatMap((list) =>
    Array.isArray(list) ? list.filter((tag): tag is string => typeof tag === 'string') : [],
  );
  return carried.some((tag) => wanted.has(tag.trim().toLowerCase()));
}

/** What an identity may do: experts approve, admins change exclusions; everyone else is a customer. */
export interface RoleSet {
  expert: boolean;
  admin: boolean;
}

export function rolesOf(roles: Roles, who: Identity): RoleSet {
  return { expert: roles.experts.includes(who), admin: roles.admins.includes(who) };
}

/** "device group Domain Controllers": how a rule is named on cards, in refusals and in the audit. */
export function describeDeviceRule(rule: Exclusions['devices'][number]): string {
  if ('id' in rule) return `device id ${rule.id}`;
  if ('name' in rule) return `device name ${rule.name}`;
  if ('group' in rule) return `device group ${rule.group}`;
  return `device tag ${rule.tag}`;
}

export function describeUserRule(rule: Exclusions['users'][number]): string {
  if ('upn' in rule) return `user ${rule.upn}`;
  if ('id' in rule) return `user id ${rule.id}`;
  return `user group ${rule.group}`;
}
