import type { IncomingHttpHeaders } from 'node:http';
import { HttpRequestError, headerOf, request, retryAfterMsOf } from '../../adapters/http-client.js';

/** A Teams account as the Bot Connector takes it (Bot Framework's `ChannelAccount`). */
interface ChannelAccount {
  id?: string;
  name?: string;
  aadObjectId?: string;
  role?: string;
  properties?: unknown;
}

/** A conversation as the Bot Connector takes it (Bot Framework's `ConversationAccount`). */
interface ConversationAccount extends ChannelAccount {
  isGroup?: boolean;
  conversationType?: string;
  tenantId?: string;
}

/** A stored conversation reference (Bot Framework's `ConversationReference`, saved when the bot was added). */
export interface ConversationReference {
  activityId?: string;
  user?: ChannelAccount;
  bot?: ChannelAccount;
  conversation?: ConversationAccount;
  channelId?: string;
  locale?: string;
  serviceUrl?: string;
}

/** The bot's Bearer token for the Bot Connector; `rejected` is a token the connector just refused (401). */
export interface ConnectorToken {
  get(rejected?: string): Promise<string>;
}

/**
 * A Bot Connector call that got an answer other than 2xx: its status, the error `code` of its body
 * (`{"error": {"code": "MessageWritesBlocked"}}`) and its `Retry-After` in ms, read once here.
 */
export class ConnectorError extends Error {
  override readonly name = 'ConnectorError';
  readonly code: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(
    method: string,
    readonly statusCode: number,
    headers: IncomingHttpHeaders,
    text: string,
  ) {
    const code = errorCodeOf(text);
    super(`Bot Connector answered ${statusCode} to ${method}${code ? ` (${code})` : ''}`);
    this.code = code;
    this.retryAfterMs = retryAfterMsOf(headerOf(headers, 'retry-after'));
  }
}

function errorCodeOf(text: string): string | undefined {
  try {
    const code = (JSON.parse(text) as { error?: { code?: unknown } } | null)?.error?.code;
    return typeof code === 'string' && code ? code : undefined;
  } catch {
    return undefined;
  }
}

const ADAPTIVE_CARD = 'application/vnd.microsoft.card.adaptive';
/** The Bot Framework protocol version spoken, as Bot Framework's own client names it, and this bot. */
const USER_AGENT = 'Microsoft-BotFramework/3.1 mdr-chatops-bot';
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

/** The fields of an account Bot Framework's serializer sends; anything else stored with it is left out. */
function account<T extends ConversationAccount>(value: T | undefined, fields: readonly (keyof T)[]) {
  if (!value) return undefined;
  const out: Record<string, unknown> = {};
  for (const field of fields) if (value[field] !== undefined) out[field as string] = value[field];
  return out;
}
const CHANNEL_ACCOUNT = ['id', 'name', 'aadObjectId', 'role', 'properties'] as const;
const CONVERSATION_ACCOUNT = [
  'isGroup',
  'conversationType',
  'id',
  'name',
  'aadObjectId',
  'role',
  'tenantId',
  'properties',
] as const;

/**
 * The activity Bot Framework sends for the same call: the conversation reference applied (the bot as
 * `from`, the reference's user as `recipient`, its conversation, channel, service URL and locale) to a
 * `MessageFactory` message. Bot Framework also sets `replyToId` to the id of the proactive turn it makes
 * up for the call (a random id no message has): nothing is replied to, so it is left out.
 */
export function connectorActivity(
  reference: ConversationReference,
  message: { id?: string; card?: unknown; text?: string },
): Record<string, unknown> {
  const isNew = message.id === undefined;
  const activity: Record<string, unknown> = {
    type: 'message',
    id: message.id,
    serviceUrl: reference.serviceUrl,
    channelId: reference.channelId,
    from: account(reference.bot, CHANNEL_ACCOUNT),
    conversation: account(reference.conversation, CONVERSATION_ACCOUNT),
    recipient: account(reference.user, CHANNEL_ACCOUNT),
    attachmentLayout: isNew && message.card !== undefined ? 'list' : undefined,
    locale: reference.locale,
    text: message.text,
    inputHint: isNew ? 'acceptingInput' : undefined,
    attachments:
      message.card === undefined ? undefined : [{ contentType: ADAPTIVE_CARD, content: message.card }],
  };
  for (const key of Object.keys(activity)) if (activity[key] === undefined) delete activity[key];
  return activity;
}

/** What the connector calls need: the bot's token (none without an app id) and each call's bound. */
export interface BotConnectorOptions {
  token?: ConnectorToken | undefined;
  timeoutMs: number;
}

/**
 * The Bot Connector calls the card deliveries make (post, update, a reminder in the card's thread),
 * straight over the shared keep-alive HTTP client: one try each, bounded in time (the delivery job
 * queues throttled and failed calls again), the bot's token cached and asked again once after a 401.
 * Failures are `ConnectorError`s (an answer) or `HttpRequestError`s (no answer in time, or none).
 */
export class BotConnector {
  constructor(private readonly options: BotConnectorOptions) {}

  /** Post a new message with `card` (or `text`) to the conversation; answers the new activity's id. */
  async post(reference: ConversationReference, message: { card?: unknown; text?: string }): Promise<string> {
    const conversationId = reference.conversation?.id ?? '';
    const answer = await this.call(
      'POST',
      activitiesUrl(reference),
      connectorActivity(reference, message),
      conversationId,
    );
    const id = (parseJson(answer) as { id?: unknown } | undefined)?.id;
    return typeof id === 'string' ? id : '';
  }

  /** Replace the message `activityId` of the conversation with `card`. */
  async update(reference: ConversationReference, activityId: string, card: unknown): Promise<void> {
    await this.call(
      'PUT',
      `${activitiesUrl(reference)}/${encodeURIComponent(activityId)}`,
      connectorActivity(reference, { id: activityId, card }),
    );
  }

  private async call(
    method: 'POST' | 'PUT',
    url: string,
    activity: Record<string, unknown>,
    conversationId?: string,
  ): Promise<string> {
    const body = JSON.stringify(activity);
    const { token, timeoutMs } = this.options;
    let bearer = token ? await bounded(token.get(), timeoutMs) : undefined;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = {
        accept: '*/*',
        'content-type': 'application/json; charset=utf-8',
        'user-agent': USER_AGENT,
      };
      if (bearer) headers.authorization = `Bearer ${bearer}`;
      // As Bot Framework sends it with a new message; a header carries printable ASCII only.
      if (conversationId && PRINTABLE_ASCII.test(conversationId))
        headers['x-ms-conversation-id'] = conversationId;
      const answer = await request(method, url, { headers, body, timeoutMs });
      if (answer.status >= 200 && answer.status < 300) return answer.text;
      // A refused token (revoked, or expired early) is asked for again, once: the call did nothing.
      if (answer.status === 401 && token && attempt === 0) {
        bearer = await bounded(token.get(bearer), timeoutMs);
        continue;
      }
      throw new ConnectorError(method, answer.status, answer.headers, answer.text);
    }
  }
}

function activitiesUrl(reference: ConversationReference): string {
  const base = (reference.serviceUrl ?? '').replace(/\/+$/, '');
  return `${base}/v3/conversations/${encodeURIComponent(reference.conversation?.id ?? '')}/activities`;
}

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

/** The token, or an `ETIMEDOUT` failure when it does not come within the call's bound. */
function bounded<T>(pending: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new HttpRequestError(`no Bot Connector token within ${timeoutMs} ms`, 'ETIMEDOUT')),
      timeoutMs,
    );
  });
  return Promise.race([pending, late]).finally(() => clearTimeout(timer));
}

/** Bot Framework's public and US Government cloud settings for the bot's own token. */
const PUBLIC_CLOUD = {
  loginUrl: 'https://login.microsoftonline.com/botframework.com',
  loginPrefix: 'https://login.microsoftonline.com/',
  tenant: 'botframework.com',
  scope: 'https://api.botframework.com',
};
const US_GOVERNMENT = {
  channelService: 'https://botframework.azure.us',
  loginUrl: 'https://login.microsoftonline.us/MicrosoftServices.onmicrosoft.us',
  loginPrefix: 'https://login.microsoftonline.us/',
  tenant: 'MicrosoftServices.onmicrosoft.us',
  scope: 'https://api.botframework.us',
};

/** Bot Framework settings that, when one is set, make it take every login setting as given. */
const PARAMETERIZED = [
  'ToChannelFromBotLoginUrl',
  'ToChannelFromBotOAuthScope',
  'ToBotFromChannelTokenIssuer',
  'OAuthUrl',
  'OAuthApiEndpoint',
  'ToBotFromChannelOpenIdMetadataUrl',
  'BotOpenIdMetadata',
  'ToBotFromEmulatorOpenIdMetadataUrl',
  'CallerId',
] as const;

/** How the bot gets its token for the connector, as Bot Framework would for the same environment. */
export type ConnectorLogin =
  | {
      kind: 'secret';
      appId: string;
      secret: string;
      authority: string | undefined;
      /** Authorities trusted as given (no instance discovery at login.microsoftonline.com first). */
      knownAuthorities?: string[];
      scope: string;
    }
  /** A managed identity or a certificate: Bot Framework's own credentials get the token. */
  | {
      kind: 'botFramework';
      appId: string;
      audience: string | undefined;
      loginUrl: string | undefined;
      validateAuthority: boolean;
    };

const set = (v: string | undefined): v is string => typeof v === 'string' && v.length > 0;

/**
 * Bot Framework's choice of authority and scope for the bot's connector token (its
 * `ConfigurationBotFrameworkAuthentication` and credential factories, plus the bot's own
 * `ValidateAuthority=false` rule of adapter.ts), from the same environment. None without an app id.
 */
export function connectorLogin(env: Record<string, string | undefined>): ConnectorLogin | undefined {
  const appId = env.MicrosoftAppId ?? '';
  if (!appId) return undefined;
  const parameterized = PARAMETERIZED.some((name) => set(env[name]));
  const government = env.ChannelService === US_GOVERNMENT.channelService;
  if (!parameterized && set(env.ChannelService) && !government)
    throw new Error('The provided ChannelService value is not supported.');
  const cloud = government && !parameterized ? US_GOVERNMENT : PUBLIC_CLOUD;
  const loginUrl = parameterized ? env.ToChannelFromBotLoginUrl : cloud.loginUrl;
  const audience = parameterized ? env.ToChannelFromBotOAuthScope : cloud.scope;
  const validateAuthority = parameterized
    ? String(env.ValidateAuthority ?? true).toLowerCase() !== 'false'
    : true;
  const secret = env.MicrosoftAppPassword ?? '';
  const trustLoginUrl = String(env.ValidateAuthority ?? '').toLowerCase() === 'false';
  if (trustLoginUrl && !validateAuthority && set(loginUrl) && secret) {
    return {
      kind: 'secret',
      appId,
      secret,
      authority: loginUrl,
      knownAuthorities: [new URL(loginUrl).host],
      scope: withDefaultScope(audience || PUBLIC_CLOUD.scope),
    };
  }
  const appType = (env.MicrosoftAppType ?? '').trim().toLowerCase();
  const certificate = set(env.CertificateThumbprint) || set(env.CertificatePrivateKey);
  if (!trustLoginUrl && (appType === 'userassignedmsi' || certificate))
    return { kind: 'botFramework', appId, audience, loginUrl, validateAuthority };
  const tenant = trustLoginUrl || appType === 'singletenant' ? (env.MicrosoftAppTenantId ?? '') : '';
  const endpoint = loginUrl?.toLowerCase();
  const known = [PUBLIC_CLOUD, US_GOVERNMENT].find((c) => endpoint?.startsWith(c.loginPrefix));
  return {
    kind: 'secret',
    appId,
    secret,
    authority: known ? `${known.loginPrefix}${tenant || known.tenant}` : endpoint,
    scope: withDefaultScope(audience || (known ?? PUBLIC_CLOUD).scope),
  };
}

const withDefaultScope = (scope: string) => (scope.endsWith('/.default') ? scope : `${scope}/.default`);

/** Bot Framework refreshes its token 5 minutes before it expires; so does this. */
const REFRESH_BEFORE_EXPIRY_MS = 5 * 60_000;

/**
 * The bot's connector token for `login`: one client-credentials request at a time (MSAL), the token
 * kept until 5 minutes before it expires, and asked again when the connector refused it.
 */
export function connectorToken(
  env: Record<string, string | undefined>,
  login = connectorLogin(env),
): ConnectorToken | undefined {
  if (!login) return undefined;
  return login.kind === 'secret' ? new SecretToken(login) : new BotFrameworkToken(env, login);
}

class SecretToken implements ConnectorToken {
  private cached: { token: string; refreshAt: number } | undefined;
  private pending: Promise<string> | undefined;
  private client: Promise<import('@azure/msal-node').ConfidentialClientApplication> | undefined;

  constructor(private readonly login: Extract<ConnectorLogin, { kind: 'secret' }>) {}

  get(rejected?: string): Promise<string> {
    const cached = this.cached;
    if (cached && cached.token !== rejected && Date.now() < cached.refreshAt)
      return Promise.resolve(cached.token);
    this.pending ??= this.fetch().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async fetch(): Promise<string> {
    const { appId, secret, authority, knownAuthorities, scope } = this.login;
    this.client ??= import('@azure/msal-node').then(
      ({ ConfidentialClientApplication }) =>
        new ConfidentialClientApplication({
          auth: {
            clientId: appId,
            clientSecret: secret,
            ...(authority ? { authority } : {}),
            ...(knownAuthorities ? { knownAuthorities } : {}),
          },
        }),
    );
    const result = await (await this.client).acquireTokenByClientCredential({
      scopes: [scope],
      skipCache: true,
    });
    if (typeof result?.accessToken !== 'string')
      throw new Error('Authentication: No access token received from MSAL.');
    const expiresAt = result.expiresOn?.getTime() ?? Date.now();
    this.cached = { token: result.accessToken, refreshAt: expiresAt - REFRESH_BEFORE_EXPIRY_MS };
    return result.accessToken;
  }
}

/** A managed identity's or a certificate's token, by Bot Framework's own credentials (loaded for it only). */
class BotFrameworkToken implements ConnectorToken {
  private credentials: Promise<{ getToken(forceRefresh?: boolean): Promise<string> }> | undefined;

  constructor(
    private readonly env: Record<string, string | undefined>,
    private readonly login: Extract<ConnectorLogin, { kind: 'botFramework' }>,
  ) {}

  async get(rejected?: string): Promise<string> {
    const { appId, audience, loginUrl, validateAuthority } = this.login;
    this.credentials ??= import('botbuilder').then(
      async ({ ConfigurationServiceClientCredentialFactory }) => {
        const factory = new ConfigurationServiceClientCredentialFactory(this.env as never);
        const made = await factory.createCredentials(
          appId,
          audience as string,
          loginUrl as string,
          validateAuthority,
        );
        return made as unknown as { getToken(forceRefresh?: boolean): Promise<string> };
      },
    );
    return (await this.credentials).getToken(rejected !== undefined);
  }
}
