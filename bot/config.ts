import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { MdrError } from '../core/errors.js';
import { type Policy, policySchema, SECRET_REFERENCE } from '../core/policy.js';
import { formatPath } from '../core/validation.js';
import type { WebhookEventType } from '../core/webhook-events.js';

/** Start-up stopped because of bad configuration; the message lists every problem and its fix. */
export class ConfigError extends MdrError {
  readonly problems: string[];
  constructor(problems: string[]) {
    super('config_invalid', `Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
  }
}

const blankAsUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const optional = <T extends z.ZodType>(schema: T) => z.preprocess(blankAsUndefined, schema.optional());
const withDefault = <T extends z.ZodType>(schema: T, value: z.input<T>) =>
  z.preprocess(blankAsUndefined, schema.prefault(value as never));

const httpUrl = (hint: string) =>
  z
    .url({ protocol: /^https?$/, error: `must be an http(s) URL, ${hint}` })
    .transform((u) => u.replace(/\/+$/, ''));
const secret = (what: string) =>
  z.string().min(16, `is too short: use at least 16 random characters for ${what}`);
/** A whole number from `min` to `max`, in the words of `hint` whatever is wrong with it. */
const wholeNumber = (hint: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number({ error: hint }).int({ error: hint }).min(min, { error: hint }).max(max, { error: hint });
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A host name, or `*.` and a domain (any host under it). */
const SERVICE_HOST = /^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$/;

const envSchema = z.object({
  PORT: withDefault(wholeNumber('must be a port number from 0 to 65535 (default 3978)', 0, 65_535), 3978),
  HOST: optional(z.string()),
  REDIS_URL: optional(
    z.url({
      protocol: /^rediss?$/,
      error: 'must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379/0',
    }),
  ),
  REDIS_KEY_PREFIX: withDefault(
    z.string().regex(/^[A-Za-z0-9:_.-]{1,64}$/, 'must be 1-64 letters, digits or ":_.-" (e.g. mdr:)'),
    'mdr:',
  ),
  REDIS_CLUSTER: withDefault(bool, 'false'),
  POLICY_FILE: optional(z.string()),
  INGEST_TOKEN: optional(secret('the ingest bearer token')),
  ADMIN_TOKEN: optional(secret('the admin bearer token')),
  SLACK_BOT_TOKEN: optional(
    z.string().regex(/^xoxb-/, 'must be a bot token starting with xoxb- (Slack app > OAuth & Permissions)'),
  ),
  SLACK_SIGNING_SECRET: optional(
    z.string().min(8, 'looks wrong: copy it from Slack app > Basic Information > Signing Secret'),
  ),
  SLACK_APP_TOKEN: optional(
    z
      .string()
      .regex(
        /^xapp-/,
        'must be an app-level token starting with xapp- (Slack app > Basic Information > App-Level Tokens, scope connections:write)',
      ),
  ),
  SLACK_API_URL: withDefault(httpUrl('e.g. https://slack.com/api/'), 'https://slack.com/api/'),
  MicrosoftAppId: optional(z.string()),
  MicrosoftAppPassword: optional(z.string()),
  MicrosoftAppType: optional(
    z.enum(['MultiTenant', 'SingleTenant', 'UserAssignedMSI'], {
      error: 'must be MultiTenant, SingleTenant or UserAssignedMSI',
    }),
  ),
  MicrosoftAppTenantId: optional(
    z
      .string()
      .regex(GUID, 'must be the tenant id, a GUID (Azure portal > Microsoft Entra ID > Overview > Tenant ID)')
      .transform((v) => v.toLowerCase()),
  ),
  TEAMS_SERVICE_URL_HOSTS: optional(
    z.string().transform((value, ctx) => {
      const hosts = value
        .split(',')
        .map((h) => h.trim().toLowerCase())
        .filter(Boolean);
      const bad = hosts.find((h) => !SERVICE_HOST.test(h));
      if (bad === undefined) return hosts;
      ctx.addIssue({
        code: 'custom',
        message: `${JSON.stringify(bad)} is not a host name: give host names separated by commas, e.g. smba.infra.example.com,*.botframework.example`,
      });
      return z.NEVER;
    }),
  ),
  DEFENDER_TENANT_ID: optional(z.string()),
  DEFENDER_CLIENT_ID: optional(z.string()),
  DEFENDER_CLIENT_SECRET: optional(z.string()),
  AZURE_AUTHORITY_HOST: withDefault(
    httpUrl('e.g. https://login.microsoftonline.com'),
    'https://login.microsoftonline.com',
  ),
  DEFENDER_API_URL: withDefault(
    httpUrl('e.g. https://api.security.microsoft.com'),
    'https://api.security.microsoft.com',
  ),
  GRAPH_API_URL: withDefault(httpUrl('e.g. https://graph.microsoft.com'), 'https://graph.microsoft.com'),
  DRY_RUN: withDefault(bool, 'false'),
  ALLOW_INSECURE_URLS: withDefault(bool, 'false'),
  GRAPH_POLL_SECONDS: optional(
    wholeNumber('must be a whole number of seconds, at least 30 (Graph allows 150 requests a minute)', 30),
  ),
  DEFENDER_FOLLOW_SECONDS: withDefault(
    wholeNumber(
      'must be a whole number of seconds from 1 to 300 (a machine action is followed for 10 minutes at most)',
      1,
      300,
    ),
    5,
  ),
  DEFENDER_ACTIONS_PER_MINUTE: withDefault(wholeNumber('must be a whole number, at least 1', 1), 100),
  DEFENDER_ACTIONS_PER_HOUR: withDefault(wholeNumber('must be a whole number, at least 1', 1), 1_500),
  LOG_LEVEL: withDefault(
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      error: 'must be one of fatal, error, warn, info, debug, trace, silent (default info)',
    }),
    'info',
  ),
  MAIL_SENDER: optional(
    z
      .email('must be the address of a mailbox the app may send as, e.g. mdr-notifications@contoso.com')
      .transform((v) => v.toLowerCase()),
  ),
  INCIDENT_WRITEBACK: withDefault(bool, 'false'),
  PUBLIC_URL: optional(httpUrl('the address users reach the bot at, e.g. https://mdr-bot.example.com')),
  OTEL_EXPORTER_OTLP_ENDPOINT: optional(
    httpUrl('the OTLP/HTTP address of your collector, e.g. http://otel-collector:4318'),
  ),
  OTEL_SERVICE_NAME: withDefault(
    z.string().trim().min(1, 'must not be empty').max(255, 'must be at most 255 characters'),
    'mdr-bot',
  ),
});

type Env = z.output<typeof envSchema>;

/** Every environment variable the configuration reads: deployment files may name these and no others. */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze(Object.keys(envSchema.shape));

/** Base URLs that carry bearer tokens or the bot token: `https://` outside local mode. */
export const SECURE_URL_VARIABLES = [
  'SLACK_API_URL',
  'DEFENDER_API_URL',
  'GRAPH_API_URL',
  'AZURE_AUTHORITY_HOST',
] as const;

/** A webhook of the policy with its secret read from the environment variable it names. */
export interface Webhook {
  url: string;
  /** The HMAC key: never logged, never written to Redis. */
  secret: string;
  events: WebhookEventType[];
}

export interface Config {
  port: number;
  host?: string;
  redis?: { url: string; keyPrefix: string; cluster: boolean };
  keyPrefix: string;
  policyFile?: string;
  policy: Policy;
  ingestToken?: string;
  adminToken?: string;
  /**
   * Slack: over HTTP (`POST /slack/events`, signed with `signingSecret`) or, with `appToken`
   * (`SLACK_APP_TOKEN`), over Socket Mode, where no signing secret is needed.
   */
  slack?: { botToken: string; signingSecret?: string; appToken?: string; apiUrl: string };
  teams: {
    appId?: string;
    appType?: string;
    /** The only tenant served and delivered to (required with an app id). */
    tenantId?: string;
    /** Bot Framework checks tokens (an app id is set); without it Teams runs in local mode only. */
    authEnabled: boolean;
    /** Hosts allowed as `serviceUrl` besides the Bot Framework / Teams ones (`TEAMS_SERVICE_URL_HOSTS`). */
    serviceUrlHosts: string[];
  };
  defender?: {
    tenantId?: string;
    clientId?: string;
    clientSecret?: string;
    authorityHost: string;
    apiUrl: string;
    graphUrl: string;
  };
  dryRun: boolean;
  /** How Defender machine actions are paced and followed. */
  execution: {
    /** `DEFENDER_FOLLOW_SECONDS`: one round asking Defender about submitted actions every this often. */
    followSeconds: number;
    /** `DEFENDER_ACTIONS_PER_MINUTE` / `_PER_HOUR`: machine actions sent per tenant, across replicas. */
    actionsPerMinute: number;
    actionsPerHour: number;
  };
  graphPollSeconds?: number;
  /** `MAIL_SENDER`: the mailbox customer-task email is sent as (Graph sendMail); unset: no email. */
  mailSender?: string;
  /**
   * `INCIDENT_WRITEBACK=true`: the Graph incident's `MDR: …` custom tag and `assignedTo` are kept in step
   * with the managed status (SecurityIncident.ReadWrite.All).
   */
  incidentWriteback: boolean;
  logLevel: Env['LOG_LEVEL'];
  publicUrl?: string;
  /** The policy's `notifications.webhooks`, secrets resolved; empty when there are none. */
  webhooks: Webhook[];
  /**
   * `OTEL_EXPORTER_OTLP_ENDPOINT`: traces are exported there (OTLP/HTTP, JSON) as `serviceName`
   * (`OTEL_SERVICE_NAME`); unset: no tracing, and no OpenTelemetry SDK is loaded.
   */
  tracing?: { endpoint: string; serviceName: string };
  /** `ALLOW_INSECURE_URLS=true` (tests only): `http://` base URLs allowed outside local mode. */
  allowInsecureUrls: boolean;
  /** The variables of SECURE_URL_VARIABLES that are `http://` under ALLOW_INSECURE_URLS (named in the log). */
  insecureUrls: string[];
  /** No Slack, Teams, Defender or Redis configured: the embedded default. */
  localMode: boolean;
}

/** The demo policy of local mode: a demo expert and admin, and a few exclusions to see them at work. */
export const DEMO_POLICY: Policy = {
  roles: {
    experts: ['slack:U0EXPERT1', 'teams:00000000-0000-0000-0000-0000000e0001'],
    admins: ['slack:U0ADMIN1'],
  },
  exclusions: {
    devices: [{ group: 'Finance-Servers' }, { tag: 'VIP' }],
    users: [{ upn: 'ceo@contoso.com' }, { group: 'Executives' }],
  },
  channels: {},
  reminders: { pendingTaskHours: 24 },
  notifications: { email: ['soc@contoso.com'] },
};

/**
 * Parse and check the whole configuration once (`env` defaults to the process environment). Throws a
 * ConfigError listing every problem at once, each naming the variable and how to fix it.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const problems: string[] = [];
  // Each variable is read on its own and the checks across variables go by which ones are set, so one
  // bad value never hides another problem. Once nothing is wrong, every variable has its value.
  const e = {} as Env;
  for (const [name, schema] of Object.entries(envSchema.shape)) {
    const parsed = schema.safeParse(env[name]);
    if (parsed.success) (e as Record<string, unknown>)[name] = parsed.data;
    else
      for (const issue of parsed.error.issues)
        problems.push(`${formatPath([name, ...issue.path])}: ${issue.message}`);
  }
  const given = (name: keyof Env) => blankAsUndefined(env[name]) !== undefined;

  if (given('SLACK_APP_TOKEN') && !given('SLACK_BOT_TOKEN')) {
    problems.push(
      'SLACK_BOT_TOKEN: is required when SLACK_APP_TOKEN is set (Slack app > OAuth & Permissions > Bot User OAuth Token): Socket Mode receives with the app-level token and posts with the bot token',
    );
  } else if (!given('SLACK_APP_TOKEN') && given('SLACK_BOT_TOKEN') !== given('SLACK_SIGNING_SECRET')) {
    problems.push(
      given('SLACK_BOT_TOKEN')
        ? 'SLACK_SIGNING_SECRET: is required when SLACK_BOT_TOKEN is set (Slack app > Basic Information > Signing Secret); set both or neither, or set SLACK_APP_TOKEN to use Socket Mode instead'
        : 'SLACK_BOT_TOKEN: is required when SLACK_SIGNING_SECRET is set (Slack app > OAuth & Permissions > Bot User OAuth Token); set both or neither',
    );
  }
  if (given('MicrosoftAppId') && !given('MicrosoftAppPassword') && e.MicrosoftAppType !== 'UserAssignedMSI') {
    problems.push(
      'MicrosoftAppPassword: is required when MicrosoftAppId is set (the bot registration client secret)',
    );
  }
  if ((given('MicrosoftAppId') || e.MicrosoftAppType === 'SingleTenant') && !given('MicrosoftAppTenantId')) {
    problems.push(
      `MicrosoftAppTenantId: is required when ${given('MicrosoftAppId') ? 'MicrosoftAppId is set' : 'MicrosoftAppType is SingleTenant'}: only that tenant's Teams is served (Azure portal > Microsoft Entra ID > Overview > Tenant ID; or the bot's app registration > Overview > Directory (tenant) ID)`,
    );
  }
  const defenderSet = (
    ['DEFENDER_TENANT_ID', 'DEFENDER_CLIENT_ID', 'DEFENDER_CLIENT_SECRET'] as const
  ).filter(given).length;
  if ((given('DEFENDER_CLIENT_SECRET') || given('DEFENDER_CLIENT_ID')) && !given('DEFENDER_TENANT_ID')) {
    problems.push(
      'DEFENDER_TENANT_ID: is required with DEFENDER_CLIENT_ID / DEFENDER_CLIENT_SECRET (the Entra tenant of the app registration that acts)',
    );
  }
  if (given('DEFENDER_CLIENT_SECRET') && !given('DEFENDER_CLIENT_ID')) {
    problems.push(
      'DEFENDER_CLIENT_ID: is required with DEFENDER_CLIENT_SECRET (the application (client) id of the app registration)',
    );
  }

  // Outside local mode a token must never travel in clear: http:// only when explicitly allowed.
  const local =
    !given('REDIS_URL') && !given('SLACK_BOT_TOKEN') && !given('MicrosoftAppId') && defenderSet === 0;
  const insecure = SECURE_URL_VARIABLES.filter((name) => e[name]?.startsWith('http://'));
  if (!local && !e.ALLOW_INSECURE_URLS) {
    for (const name of insecure) {
      problems.push(
        `${name}: must be https:// outside local mode (bearer tokens must not travel in clear); for a test server set ALLOW_INSECURE_URLS=true`,
      );
    }
  }

  const appRegistration = given('DEFENDER_CLIENT_ID') && given('DEFENDER_TENANT_ID');
  if (given('MAIL_SENDER') && !local && !appRegistration) {
    problems.push(
      'MAIL_SENDER: needs the app registration that sends it (DEFENDER_TENANT_ID, DEFENDER_CLIENT_ID, DEFENDER_CLIENT_SECRET) with the Mail.Send application permission',
    );
  }

  if (e.INCIDENT_WRITEBACK && !local && !appRegistration) {
    problems.push(
      'INCIDENT_WRITEBACK: needs the app registration that updates the incidents (DEFENDER_TENANT_ID, DEFENDER_CLIENT_ID, DEFENDER_CLIENT_SECRET) with the SecurityIncident.ReadWrite.All application permission',
    );
  }

  let policy: Policy = DEMO_POLICY;
  if (e.POLICY_FILE) {
    try {
      policy = loadPolicyFile(e.POLICY_FILE);
    } catch (error) {
      problems.push(`POLICY_FILE: ${(error as Error).message}`);
    }
  }
  const webhooks = resolveWebhooks(
    policy,
    env,
    { local, allowInsecure: e.ALLOW_INSECURE_URLS === true },
    problems,
  );
  if (problems.length > 0) throw new ConfigError(problems);

  // With an app-level token Slack arrives over Socket Mode, and the signing secret is not used.
  const slack = !e.SLACK_BOT_TOKEN
    ? undefined
    : e.SLACK_APP_TOKEN
      ? { botToken: e.SLACK_BOT_TOKEN, appToken: e.SLACK_APP_TOKEN, apiUrl: `${e.SLACK_API_URL}/` }
      : e.SLACK_SIGNING_SECRET
        ? {
            botToken: e.SLACK_BOT_TOKEN,
            signingSecret: e.SLACK_SIGNING_SECRET,
            apiUrl: `${e.SLACK_API_URL}/`,
          }
        : undefined;
  const defender =
    defenderSet > 0
      ? {
          tenantId: e.DEFENDER_TENANT_ID,
          clientId: e.DEFENDER_CLIENT_ID,
          clientSecret: e.DEFENDER_CLIENT_SECRET,
          authorityHost: e.AZURE_AUTHORITY_HOST,
          apiUrl: e.DEFENDER_API_URL,
          graphUrl: e.GRAPH_API_URL,
        }
      : undefined;
  const localMode = !e.REDIS_URL && !slack && !e.MicrosoftAppId && !defender;
  return {
    port: e.PORT,
    host: e.HOST,
    redis: e.REDIS_URL
      ? { url: e.REDIS_URL, keyPrefix: e.REDIS_KEY_PREFIX, cluster: e.REDIS_CLUSTER }
      : undefined,
    keyPrefix: e.REDIS_KEY_PREFIX,
    policyFile: e.POLICY_FILE,
    policy: e.POLICY_FILE
      ? policy
      : localMode
        ? DEMO_POLICY
        : { ...DEMO_POLICY, roles: { experts: [], admins: [] }, exclusions: { devices: [], users: [] } },
    ingestToken: e.INGEST_TOKEN,
    adminToken: e.ADMIN_TOKEN,
    slack,
    teams: {
      appId: e.MicrosoftAppId,
      appType: e.MicrosoftAppType,
      tenantId: e.MicrosoftAppTenantId,
      authEnabled: Boolean(e.MicrosoftAppId),
      serviceUrlHosts: e.TEAMS_SERVICE_URL_HOSTS ?? [],
    },
    defender,
    dryRun: e.DRY_RUN || !defender,
    execution: {
      followSeconds: e.DEFENDER_FOLLOW_SECONDS,
      actionsPerMinute: e.DEFENDER_ACTIONS_PER_MINUTE,
      actionsPerHour: e.DEFENDER_ACTIONS_PER_HOUR,
    },
    graphPollSeconds: e.GRAPH_POLL_SECONDS,
    ...(e.MAIL_SENDER ? { mailSender: e.MAIL_SENDER } : {}),
    incidentWriteback: e.INCIDENT_WRITEBACK,
    logLevel: e.LOG_LEVEL,
    publicUrl: e.PUBLIC_URL,
    ...(e.OTEL_EXPORTER_OTLP_ENDPOINT
      ? { tracing: { endpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT, serviceName: e.OTEL_SERVICE_NAME } }
      : {}),
    allowInsecureUrls: e.ALLOW_INSECURE_URLS,
    webhooks,
    insecureUrls: localMode
      ? []
      : [
          ...insecure,
          ...webhooks.flatMap((h, i) =>
            h.url.startsWith('http://') ? [`notifications.webhooks[${i}].url`] : [],
          ),
        ],
    localMode,
  };
}

/**
 * The policy's webhooks with their secrets read from the environment variables they name. Each missing
 * or short secret, and each `http://` URL outside local mode (without ALLOW_INSECURE_URLS), is a problem
 * naming the webhook; the secret's value never appears in a message.
 */
function resolveWebhooks(
  policy: Policy,
  env: Record<string, string | undefined>,
  mode: { local: boolean; allowInsecure: boolean },
  problems: string[],
): Webhook[] {
  const hooks = policy.notifications?.webhooks ?? [];
  const resolved: Webhook[] = [];
  hooks.forEach((hook, i) => {
    const where = `POLICY_FILE: notifications.webhooks[${i}]`;
    const name = SECRET_REFERENCE.exec(hook.secret)?.[1] ?? '';
    const secret = env[name]?.trim() ?? '';
    if (secret === '') {
      problems.push(
        `${where}.secret: the environment variable ${name} is not set (it holds the webhook's signing secret: at least 16 random characters, shared with the receiver)`,
      );
    } else if (secret.length < 16) {
      problems.push(`${where}.secret: ${name} is too short: use at least 16 random characters`);
    }
    if (hook.url.startsWith('http://') && !mode.local && !mode.allowInsecure) {
      problems.push(
        `${where}.url: must be https:// outside local mode (events and their signatures must not travel in clear); for a test receiver set ALLOW_INSECURE_URLS=true`,
      );
    }
    resolved.push({ url: hook.url, secret, events: hook.events });
  });
  return resolved;
}

/** Read and validate the YAML policy file; the error names each bad field by its path. */
export function loadPolicyFile(path: string): Policy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new MdrError(
      'config_invalid',
      `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  }
  return parsePolicy(text, path);
}

/** Validate policy YAML text. */
export function parsePolicy(text: string, source = 'policy'): Policy {
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (error) {
    throw new MdrError(
      'config_invalid',
      `${source} is not valid YAML: ${(error as Error).message.split('\n')[0]}`,
    );
  }
  const result = policySchema.safeParse(data ?? {});
  if (!result.success) {
    const list = result.error.issues.map((i) => `${formatPath(i.path) || '(top level)'}: ${i.message}`);
    throw new MdrError('config_invalid', `${source} is invalid: ${list.join('; ')}`);
  }
  return result.data;
}
