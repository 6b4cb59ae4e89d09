import { ClaimsIdentity } from 'botframework-connector';
import nock from 'nock';
import { describe, expect, it } from 'vitest';
import { createTeamsAdapter } from '../../bot/teams/adapter.js';
import { onlyNockedHttp } from '../support/nocked-http.js';
import { APP_ID, TEAMS_AUTH_ENV, TEAMS_SERVICE_URL } from '../support/teams.js';

const LOGIN = 'https://login.cloud.test';
const AUTHORITY = `${LOGIN}/7f3c2a10-5b1e-4c8d-9a6f-2e4b8d1c0a55`;

/** The bot's own Bot Connector token, asked of `ToChannelFromBotLoginUrl`, then one message sent. */
async function sendOneMessage(env: Record<string, string>): Promise<void> {
  const adapter = createTeamsAdapter({ ...TEAMS_AUTH_ENV, ...env });
  const auth = (adapter as unknown as { auth: import('botframework-connector').BotFrameworkAuthentication })
    .auth;
  const identity = new ClaimsIdentity([
    { type: 'aud', value: APP_ID },
    { type: 'appid', value: APP_ID },
    { type: 'ver', value: '1.0' },
  ]);
  const factory = auth.createConnectorFactory(identity);
  const client = await factory.create(TEAMS_SERVICE_URL, 'https://api.botframework.com');
  await client.conversations.sendToConversation('19:conv@thread.tacv2', { type: 'message', text: 'hi' });
}

onlyNockedHttp();

describe('Teams login authority', () => {
  it('with ValidateAuthority=false asks only the configured login URL for the bot token', async () => {
    const login = nock(LOGIN)
      .get(/\/v2\.0\/\.well-known\/openid-configuration/)
      .reply(200, {
        token_endpoint: `${AUTHORITY}/oauth2/v2.0/token`,
        authorization_endpoint: `${AUTHORITY}/oauth2/v2.0/authorize`,
        issuer: `${AUTHORITY}/v2.0`,
        jwks_uri: `${AUTHORITY}/discovery/v2.0/keys`,
        end_session_endpoint: `${AUTHORITY}/oauth2/v2.0/logout`,
      })
      .post(/^\/7f3c2a10-5b1e-4c8d-9a6f-2e4b8d1c0a55\/oauth2\/v2\.0\/token/, (body) => {
        return (body as Record<string, string>).client_id === APP_ID;
      })
      .reply(200, {
        token_type: 'Bearer',
        expires_in: 3600,
        ext_expires_in: 3600,
        access_token: 'cloud-token',
      });
    const connector = nock(new URL(TEAMS_SERVICE_URL).origin, {
      reqheaders: { authorization: 'Bearer cloud-token' },
    })
      .post(/\/v3\/conversations\/.*\/activities/)
      .reply(201, { id: 'activity-1' });

    await sendOneMessage({ ValidateAuthority: 'false', ToChannelFromBotLoginUrl: AUTHORITY });

    expect(login.isDone()).toBe(true);
    expect(connector.isDone()).toBe(true);
  });

  it('without it keeps Bot Framework validating the authority with the public cloud first', async () => {
    // No fake of login.microsoftonline.com: the public cloud's instance discovery is what is tried, and
    // refused by the network guard, so no token is fetched from the private login URL.
    const login = nock(LOGIN).post(/token/).reply(200, { access_token: 'never' });
    await expect(sendOneMessage({ ToChannelFromBotLoginUrl: AUTHORITY })).rejects.toThrow();
    expect(login.isDone()).toBe(false);
  });
});
