import { generateKeyPairSync, type KeyObject, randomUUID, sign } from 'node:crypto';
import nock from 'nock';

/** Activities shaped as Microsoft Teams sends them to a bot (Bot Framework v3), built with overrides. */

export const TEAMS_SERVICE_URL = 'https://smba.test.local/amer/';
export const TENANT_ID = '7f3c2a10-5b1e-4c8d-9a6f-2e4b8d1c0a55';
export const BOT = { id: '28:00000000-0000-0000-0000-00000000b07', name: 'MDR Bot' };
export const CHANNEL_ID = '19:4b1f2c3d5e6f7a8b9c0d1e2f3a4b5c6d@thread.tacv2';
export const TEAM = {
  id: CHANNEL_ID,
  name: 'Contoso SOC',
  aadGroupId: 'e3b0c442-98fc-4c14-9afb-4c8996fb9242',
};
/** An MDR expert (named in the test policy) and a customer analyst, as Teams users. */
export const EXPERT_USER = {
  id: '29:1expertMriAbCdEfGhIjKlMnOpQrStUvWxYz0123456789',
  name: 'Morgan Expert',
  aadObjectId: '6f2c0a4e-1111-4aad-9d7e-000000000e01',
};
export const CUSTOMER_USER = {
  id: '29:1customerMriAbCdEfGhIjKlMnOpQrStUvWxYz012345',
  name: 'Casey Customer',
  aadObjectId: '6f2c0a4e-2222-4aad-9d7e-000000000c01',
};

type Activity = Record<string, any>;

const merge = (base: Activity, overrides: Activity): Activity => {
  const out: Activity = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    const current = out[key];
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && current && typeof current === 'object'
        ? merge(current, value)
        : value;
  }
  return out;
};

const channelConversation = (id = CHANNEL_ID) => ({
  isGroup: true,
  conversationType: 'channel',
  tenantId: TENANT_ID,
  id,
});

const common = (from = EXPERT_USER): Activity => ({
  id: `f:${randomUUID()}`,
  timestamp: new Date().toISOString(),
  localTimestamp: new Date().toISOString(),
  channelId: 'msteams',
  serviceUrl: TEAMS_SERVICE_URL,
  from,
  recipient: BOT,
  conversation: channelConversation(),
  locale: 'en-US',
});

/** `conversationUpdate` sent when the bot is added to a team (its General channel). */
export function botAddedToTeam(overrides: Activity = {}): Activity {
  return merge(
    {
      ...common(),
      type: 'conversationUpdate',
      membersAdded: [{ id: BOT.id }],
      channelData: {
        team: TEAM,
        eventType: 'teamMemberAdded',
        tenant: { id: TENANT_ID },
        settings: { selectedChannel: { id: CHANNEL_ID } },
      },
    },
    overrides,
  );
}

/** `conversationUpdate` sent when the bot is removed from a team. */
export function botRemovedFromTeam(overrides: Activity = {}): Activity {
  return merge(
    {
      ...common(),
      type: 'conversationUpdate',
      membersRemoved: [{ id: BOT.id }],
      channelData: { team: TEAM, eventType: 'teamMemberRemoved', tenant: { id: TENANT_ID } },
    },
    overrides,
  );
}

/** `installationUpdate` (`add` or `remove`) sent when the app is installed in or removed from a team. */
export function installationUpdate(action: 'add' | 'remove' = 'add', overrides: Activity = {}): Activity {
  return merge(
    {
      ...common(),
      type: 'installationUpdate',
      action,
      channelData: {
        settings: { selectedChannel: { id: CHANNEL_ID } },
        team: TEAM,
        source: { name: 'message' },
        tenant: { id: TENANT_ID },
      },
    },
    overrides,
  );
}

/** `invoke` named `adaptiveCard/action`: a click on an `Action.Execute` button of the card `replyToId`. */
export function cardAction(
  verb: string,
  data: Record<string, unknown>,
  options: { from?: typeof EXPERT_USER; replyToId?: string } & Activity = {},
): Activity {
  const { from = EXPERT_USER, replyToId = '1700000000000', ...overrides } = options;
  return merge(
    {
      ...common(from),
      type: 'invoke',
      name: 'adaptiveCard/action',
      conversation: channelConversation(`${CHANNEL_ID};messageid=${replyToId}`),
      replyToId,
      entities: [
        { locale: 'en-US', country: 'US', platform: 'Web', timezone: 'Europe/Paris', type: 'clientInfo' },
      ],
      channelData: {
        channel: { id: CHANNEL_ID },
        team: { id: TEAM.id },
        tenant: { id: TENANT_ID },
        source: { name: 'message' },
        legacy: { replyToId: `1:${replyToId}` },
      },
      value: {
        action: { type: 'Action.Execute', title: verb, verb, data },
        trigger: 'manual',
      },
    },
    overrides,
  );
}

/** A channel message that @mentions the bot (`<at>MDR Bot</at> pending`). */
export function mentionMessage(
  text: string,
  options: { from?: typeof EXPERT_USER } & Activity = {},
): Activity {
  const { from = EXPERT_USER, ...overrides } = options;
  const mention = `<at>${BOT.name}</at>`;
  const messageId = String(Date.now());
  return merge(
    {
      ...common(from),
      id: messageId,
      type: 'message',
      text: `${mention} ${text}\n`,
      textFormat: 'plain',
      attachments: [
        { contentType: 'text/html', content: `<div><div><at>${BOT.name}</at>&nbsp;${text}</div></div>` },
      ],
      conversation: channelConversation(`${CHANNEL_ID};messageid=${messageId}`),
      entities: [
        { mentioned: { id: BOT.id, name: BOT.name }, text: mention, type: 'mention' },
        { locale: 'en-US', country: 'US', platform: 'Web', timezone: 'Europe/Paris', type: 'clientInfo' },
      ],
      channelData: {
        teamsChannelId: CHANNEL_ID,
        teamsTeamId: TEAM.id,
        channel: { id: CHANNEL_ID },
        team: { id: TEAM.id },
        tenant: { id: TENANT_ID },
      },
    },
    overrides,
  );
}

/** The bot registration the authenticated tests run as. */
export const APP_ID = 'b07b07b0-0000-4000-8000-000000000b07';
/** Teams with authentication on, for the test tenant; the fake connector host is allowed by name. */
export const TEAMS_AUTH_ENV = {
  MicrosoftAppId: APP_ID,
  MicrosoftAppPassword: 'app-password-0123456789',
  MicrosoftAppTenantId: TENANT_ID,
  TEAMS_SERVICE_URL_HOSTS: new URL(TEAMS_SERVICE_URL).hostname,
};

const OPENID = 'https://login.botframework.com';
const LOGIN = 'https://login.microsoftonline.com';
// Bot Framework caches signing keys per metadata URL for the whole process: one key per test file.
const signing = generateKeyPairSync('rsa', { modulusLength: 2048 });

/**
 * Fake the Bot Framework at the network: its OpenID metadata and signing keys (inbound tokens) and the
 * Entra token endpoint the bot gets its own Bot Connector token from (outbound). Call after
 * `nock.cleanAll()`.
 */
export function fakeBotFramework(): void {
  const jwk = { ...signing.publicKey.export({ format: 'jwk' }), kid: 'test-key-1', use: 'sig' };
  nock(OPENID)
    .persist()
    .get('/v1/.well-known/openidconfiguration')
    .reply(200, {
      issuer: 'https://api.botframework.com',
      authorization_endpoint: 'https://invalid.botframework.com',
      jwks_uri: `${OPENID}/v1/.well-known/keys`,
      id_token_signing_alg_values_supported: ['RS256'],
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
    })
    .get('/v1/.well-known/keys')
    .reply(200, { keys: [{ ...jwk, endorsements: ['msteams', 'emulator', 'webchat'] }] });
  nock(LOGIN)
    .persist()
    .get(/\/discovery\/instance/)
    .reply(200, {
      tenant_discovery_endpoint: `${LOGIN}/botframework.com/v2.0/.well-known/openid-configuration`,
      metadata: [{ preferred_network: 'login.microsoftonline.com', aliases: ['login.microsoftonline.com'] }],
    })
    .get(/\/\.well-known\/openid-configuration/)
    .reply(200, {
      token_endpoint: `${LOGIN}/botframework.com/oauth2/v2.0/token`,
      authorization_endpoint: `${LOGIN}/botframework.com/oauth2/v2.0/authorize`,
      issuer: `${LOGIN}/botframework.com/v2.0`,
      jwks_uri: `${LOGIN}/botframework.com/discovery/v2.0/keys`,
      end_session_endpoint: `${LOGIN}/botframework.com/oauth2/v2.0/logout`,
    })
    .post(/\/oauth2\/v2\.0\/token/)
    .reply(200, { token_type: 'Bearer', expires_in: 3600, ext_expires_in: 3600, access_token: 'bot-token' });
}

/** A Bot Framework channel token for `APP_ID`, signed with the faked key (`key` to forge one). */
export function channelToken(
  claims: Record<string, unknown> = {},
  key: KeyObject = signing.privateKey,
): string {
  const now = Math.floor(Date.now() / 1000);
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = enc({ alg: 'RS256', kid: 'test-key-1', typ: 'JWT' });
  const body = enc({
    iss: 'https://api.botframework.com',
    aud: APP_ID,
    serviceurl: TEAMS_SERVICE_URL,
    nbf: now - 60,
    exp: now + 600,
    ...claims,
  });
  const signature = sign('RSA-SHA256', Buffer.from(`${head}.${body}`), key).toString('base64url');
  return `${head}.${body}.${signature}`;
}
