import { CardFactory, MessageFactory, TurnContext } from 'botbuilder';
import nock from 'nock';
import { describe, expect, it } from 'vitest';
import { createTeamsAdapter } from '../../../../bot/teams/adapter.js';
import {
  BotConnector,
  type ConversationReference,
  connectorLogin,
  connectorToken,
} from '../../../../bot/teams/connector-api.js';
import { connectorErrorCode, isTimeout, retryAfterMs, statusOf } from '../../../../bot/teams/publisher.js';
import { onlyNockedHttp } from '../../../support/nocked-http.js';
import {
  APP_ID,
  BOT,
  botAddedToTeam,
  CHANNEL_ID,
  TEAMS_SERVICE_URL,
  TENANT_ID,
} from '../../../support/teams.js';

const ORIGIN = new URL(TEAMS_SERVICE_URL).origin;
const CARD = {
  type: 'AdaptiveCard',
  version: '1.5',
  body: [{ type: 'TextBlock', text: 'Incident 48213', wrap: true }],
  refresh: { userIds: [], action: { type: 'Action.Execute', verb: 'refresh', data: { incidentId: 'i-1' } } },
};

/** The reference the bot stores when added to a team, with fields Bot Framework does not send. */
function storedReference(): ConversationReference {
  const reference = TurnContext.getConversationReference(botAddedToTeam() as never) as Record<string, any>;
  reference.user = { ...reference.user, role: 'user', unknownField: 'left out' };
  reference.conversation = { ...reference.conversation, name: 'General', notInTheSchema: true };
  return reference as ConversationReference;
}

interface Seen {
  method: string;
  path: string;
  headers: Record<string, unknown>;
  body: Record<string, unknown>;
}

/** The fake connector: records every call and answers 201/200 with an id. */
function recordConnector(): Seen[] {
  const seen: Seen[] = [];
  const record = (method: string) =>
    function (this: { req: { headers: Record<string, unknown> } }, path: string, body: unknown) {
      seen.push({ method, path, headers: this.req.headers, body: body as Record<string, unknown> });
      return [method === 'POST' ? 201 : 200, { id: 'activity-1' }] as [number, unknown];
    };
  nock(ORIGIN).persist().post(/.*/).reply(record('POST')).put(/.*/).reply(record('PUT'));
  return seen;
}

/** The same calls made through Bot Framework, as the publisher made them before. */
async function sentByBotFramework(
  reference: ConversationReference,
  env: Record<string, string> = {},
): Promise<Seen[]> {
  const seen = recordConnector();
  const adapter = createTeamsAdapter(env);
  const { activityId: _reply, ...target } = reference;
  await adapter.continueConversationAsync(env.MicrosoftAppId ?? '', target as never, async (ctx) => {
    await ctx.sendActivity(MessageFactory.attachment(CardFactory.adaptiveCard(CARD)));
    await ctx.updateActivity({
      type: 'message',
      id: 'activity-1',
      attachments: [CardFactory.adaptiveCard(CARD)],
    });
  });
  const thread = {
    ...target,
    conversation: { ...target.conversation, id: `${CHANNEL_ID};messageid=activity-1` },
  };
  await adapter.continueConversationAsync(env.MicrosoftAppId ?? '', thread as never, async (ctx) => {
    await ctx.sendActivity(MessageFactory.text('Reminder: customer task act-5 is still pending.'));
  });
  nock.cleanAll();
  return seen;
}

onlyNockedHttp();

describe('the activities sent to the Bot Connector', () => {
  it('are the ones Bot Framework sends for the same post, update and reminder', async () => {
    const reference = storedReference();
    const expected = await sentByBotFramework(reference);
    const seen = recordConnector();
    const connector = new BotConnector({ timeoutMs: 5_000 });

    expect(await connector.post(reference, { card: CARD })).toBe('activity-1');
    await connector.update(reference, 'activity-1', CARD);
    const thread = {
      ...reference,
      conversation: { ...reference.conversation, id: `${CHANNEL_ID};messageid=activity-1` },
    };
    await connector.post(thread, { text: 'Reminder: customer task act-5 is still pending.' });

    // Bot Framework makes a reply to the random id of the proactive turn it invents; nothing is replied to.
    const withoutMadeUpReply = expected.map(({ body: { replyToId: _made, ...body }, ...call }) => ({
      ...call,
      body,
    }));
    expect(seen.map((c) => c.body)).toEqual(withoutMadeUpReply.map((c) => c.body));
    expect(seen.map((c) => `${c.method} ${c.path}`)).toEqual([
      `POST /amer/v3/conversations/${encodeURIComponent(CHANNEL_ID)}/activities`,
      `PUT /amer/v3/conversations/${encodeURIComponent(CHANNEL_ID)}/activities/activity-1`,
      `POST /amer/v3/conversations/${encodeURIComponent(`${CHANNEL_ID};messageid=activity-1`)}/activities`,
    ]);
    expect(seen[0]?.body).toMatchObject({
      type: 'message',
      channelId: 'msteams',
      serviceUrl: TEAMS_SERVICE_URL,
      from: BOT,
      conversation: { id: CHANNEL_ID, tenantId: TENANT_ID, conversationType: 'channel' },
      attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', content: CARD }],
    });
    for (const call of seen)
      expect(call.headers).toMatchObject({
        'content-type': 'application/json; charset=utf-8',
        accept: '*/*',
      });
    // No app id (local mode): no token is asked for or sent.
    expect(seen.every((c) => c.headers.authorization === undefined)).toBe(true);
  });
});

const LOGIN = 'https://login.microsoftonline.com';

/** The Entra token endpoint, faked: counts client-credentials requests and answers token-1, token-2, ... */
function fakeEntra(expiresIn = 3600) {
  const asked: { path: string; scope: string; clientId: string }[] = [];
  const authority = (path: string) => `${LOGIN}/${path.split('/')[1]}`;
  nock(LOGIN)
    .persist()
    .get(/\/discovery\/instance/)
    .reply(200, (uri) => {
      const endpoint = new URL(uri, LOGIN).searchParams.get('authorization_endpoint') ?? `${LOGIN}/common/`;
      const tenant = new URL(endpoint).pathname.split('/')[1];
      return {
        tenant_discovery_endpoint: `${LOGIN}/${tenant}/v2.0/.well-known/openid-configuration`,
        metadata: [
          { preferred_network: 'login.microsoftonline.com', aliases: ['login.microsoftonline.com'] },
        ],
      };
    })
    .get(/\/v2\.0\/\.well-known\/openid-configuration/)
    .reply(200, (path) => ({
      token_endpoint: `${authority(path)}/oauth2/v2.0/token`,
      authorization_endpoint: `${authority(path)}/oauth2/v2.0/authorize`,
      issuer: `${authority(path)}/v2.0`,
      jwks_uri: `${authority(path)}/discovery/v2.0/keys`,
      end_session_endpoint: `${authority(path)}/oauth2/v2.0/logout`,
    }))
    .post(/\/oauth2\/v2\.0\/token/)
    .reply(200, (path, body) => {
      const form = new URLSearchParams(body as string);
      asked.push({
        path: path.split('?')[0] ?? path,
        scope: form.get('scope') ?? '',
        clientId: form.get('client_id') ?? '',
      });
      return {
        token_type: 'Bearer',
        expires_in: expiresIn,
        ext_expires_in: expiresIn,
        access_token: `token-${asked.length}`,
      };
    });
  return asked;
}

const SINGLE_TENANT = {
  MicrosoftAppId: APP_ID,
  MicrosoftAppPassword: 'app-password-0123456789',
  MicrosoftAppType: 'SingleTenant',
  MicrosoftAppTenantId: TENANT_ID,
};

describe("the bot's connector token", () => {
  it('is asked for once and kept for the calls that follow', async () => {
    const asked = fakeEntra();
    const seen = recordConnector();
    const connector = new BotConnector({ token: connectorToken(SINGLE_TENANT), timeoutMs: 5_000 });

    await Promise.all([
      connector.post(storedReference(), { card: CARD }),
      connector.post(storedReference(), { card: CARD }),
    ]);
    await connector.update(storedReference(), 'activity-1', CARD);

    expect(asked).toEqual([
      {
        path: `/${TENANT_ID}/oauth2/v2.0/token`,
        scope: 'https://api.botframework.com/.default',
        clientId: APP_ID,
      },
    ]);
    expect(seen.map((c) => c.headers.authorization)).toEqual(Array(3).fill('Bearer token-1'));
  });

  it('is asked for again when it is within 5 minutes of expiring', async () => {
    const asked = fakeEntra(240);
    recordConnector();
    const connector = new BotConnector({ token: connectorToken(SINGLE_TENANT), timeoutMs: 5_000 });

    await connector.post(storedReference(), { card: CARD });
    await connector.post(storedReference(), { card: CARD });

    expect(asked).toHaveLength(2);
  });

  it('is asked for again once after a 401, and the call is made again with the new one', async () => {
    const asked = fakeEntra();
    const seen: (string | undefined)[] = [];
    nock(ORIGIN)
      .post(/activities/)
      .times(2)
      .reply(function () {
        seen.push(this.req.headers.authorization as string | undefined);
        return seen.length === 1
          ? [401, { message: 'Authorization has been denied for this request.' }]
          : [201, { id: 'a-2' }];
      });
    const connector = new BotConnector({ token: connectorToken(SINGLE_TENANT), timeoutMs: 5_000 });

    expect(await connector.post(storedReference(), { card: CARD })).toBe('a-2');

    expect(asked).toHaveLength(2);
    expect(seen).toEqual(['Bearer token-1', 'Bearer token-2']);
  });

  it('fails the call with the 401 when the new token is refused too, without asking a third time', async () => {
    const asked = fakeEntra();
    const refused = nock(ORIGIN)
      .post(/activities/)
      .times(2)
      .reply(401, { message: 'denied' });
    const connector = new BotConnector({ token: connectorToken(SINGLE_TENANT), timeoutMs: 5_000 });

    const failure = await connector.post(storedReference(), { card: CARD }).catch((e: unknown) => e);

    expect(statusOf(failure)).toBe(401);
    expect(refused.isDone()).toBe(true);
    expect(asked).toHaveLength(2);
  });

  it.each([
    [{}, undefined],
    [
      { MicrosoftAppId: APP_ID, MicrosoftAppPassword: 'p' },
      { authority: `${LOGIN}/botframework.com`, scope: 'https://api.botframework.com/.default' },
    ],
    [SINGLE_TENANT, { authority: `${LOGIN}/${TENANT_ID}`, scope: 'https://api.botframework.com/.default' }],
    [
      { ...SINGLE_TENANT, ChannelService: 'https://botframework.azure.us' },
      {
        authority: `https://login.microsoftonline.us/${TENANT_ID}`,
        scope: 'https://api.botframework.us/.default',
      },
    ],
    [
      {
        ...SINGLE_TENANT,
        ValidateAuthority: 'false',
        ToChannelFromBotLoginUrl: `https://login.cloud.test/${TENANT_ID}`,
        ToChannelFromBotOAuthScope: 'https://api.botframework.com',
      },
      {
        authority: `https://login.cloud.test/${TENANT_ID}`,
        knownAuthorities: ['login.cloud.test'],
        scope: 'https://api.botframework.com/.default',
      },
    ],
    [
      { ...SINGLE_TENANT, ToChannelFromBotLoginUrl: 'https://Login.Cloud.Test/Tenant' },
      { authority: 'https://login.cloud.test/tenant', scope: 'https://api.botframework.com/.default' },
    ],
  ])('is asked of the authority Bot Framework would ask, for %j', (env, expected) => {
    const login = connectorLogin(env);
    if (!expected) expect(login).toBeUndefined();
    else
      expect(login).toEqual({ kind: 'secret', appId: APP_ID, secret: env.MicrosoftAppPassword, ...expected });
  });

  it.each([
    ['single-tenant', SINGLE_TENANT],
    // Another app id: Bot Framework keeps tokens per app id and scope for the whole process.
    [
      'multi-tenant',
      { MicrosoftAppId: 'c0ffee00-0000-4000-8000-000000000001', MicrosoftAppPassword: 'secret-0123456789' },
    ],
  ])('is asked of the same authority, for the same scope, as Bot Framework asks it (%s)', async (_, env) => {
    const byBotFramework = fakeEntra();
    await sentByBotFramework(storedReference(), env);
    nock.cleanAll();
    const asked = fakeEntra();
    recordConnector();

    await new BotConnector({ token: connectorToken(env), timeoutMs: 5_000 }).post(storedReference(), {
      card: CARD,
    });

    expect(byBotFramework.length).toBeGreaterThan(0);
    expect(asked).toEqual([byBotFramework[0]]);
  });

  it('is left to Bot Framework for a managed identity', () => {
    expect(
      connectorLogin({
        MicrosoftAppId: APP_ID,
        MicrosoftAppType: 'UserAssignedMSI',
        MicrosoftAppTenantId: TENANT_ID,
      }),
    ).toMatchObject({
      kind: 'botFramework',
      audience: 'https://api.botframework.com',
    });
  });
});

describe('a failed connector call', () => {
  const post = () =>
    new BotConnector({ timeoutMs: 300 }).post(storedReference(), { card: CARD }).catch((e: unknown) => e);

  it('carries the status and Retry-After of a 429', async () => {
    nock(ORIGIN)
      .post(/activities/)
      .reply(429, { error: { code: 'Throttled', message: 'slow down' } }, { 'Retry-After': '7' });

    const failure = await post();

    expect(statusOf(failure)).toBe(429);
    expect(retryAfterMs(failure)).toBe(7_000);
    expect(isTimeout(failure)).toBe(false);
  });

  it('carries the error code of a 403 MessageWritesBlocked', async () => {
    nock(ORIGIN)
      .post(/activities/)
      .reply(403, { error: { code: 'MessageWritesBlocked', message: 'bot blocked' } });

    const failure = await post();

    expect(statusOf(failure)).toBe(403);
    expect(connectorErrorCode(failure)).toBe('MessageWritesBlocked');
  });

  it.each([404, 412, 502])('carries the status of a %i', async (status) => {
    nock(ORIGIN)
      .post(/activities/)
      .reply(status, 'not json');

    const failure = await post();

    expect(statusOf(failure)).toBe(status);
    expect(connectorErrorCode(failure)).toBeUndefined();
  });

  it('is a timeout when no answer comes within the bound', async () => {
    nock(ORIGIN)
      .post(/activities/)
      .delay(3_000)
      .reply(201, { id: 'late' });

    const failure = await post();

    expect(isTimeout(failure)).toBe(true);
    expect(statusOf(failure)).toBeUndefined();
  });
});
