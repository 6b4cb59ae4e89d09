import { webApi } from '@slack/bolt';
import nock from 'nock';
import { describe, expect, it } from 'vitest';
import { SlackCardApi } from '../../../../bot/slack/card-api.js';
import { classifySlackFailure } from '../../../../bot/slack/errors.js';
import { buildIncidentView } from '../../../../cards/incident-view.js';
import { renderSlackMessage } from '../../../../cards/slack/render.js';
import { incidentState, SAMPLE_NOW } from '../../../support/incident-factory.js';
import { onlyNockedHttp } from '../../../support/nocked-http.js';
import {
  readWebApiCall,
  SLACK_API_ORIGIN,
  SLACK_API_URL,
  SLACK_BOT_TOKEN,
  type WebApiCall,
} from '../../../support/slack.js';

const MESSAGE = renderSlackMessage(
  buildIncidentView(incidentState(), { now: SAMPLE_NOW, apiBaseUrl: 'https://mdr-bot.contoso.com' }),
);

const cardApi = () => new SlackCardApi(SLACK_API_URL, SLACK_BOT_TOKEN, 5_000);

/** The Web API client as the bot configures Bolt's: no retries, 429s rejected at once. */
const webClient = () =>
  new webApi.WebClient(SLACK_BOT_TOKEN, {
    slackApiUrl: SLACK_API_URL,
    retryConfig: { retries: 0 },
    rejectRateLimitedCalls: true,
    timeout: 5_000,
    logLevel: webApi.LogLevel.ERROR,
  });

/** Records the card calls the fake Web API receives, with their raw body (as nock hands it over). */
function recordCalls() {
  const seen: { path: string; raw: unknown; call: WebApiCall }[] = [];
  nock(SLACK_API_ORIGIN)
    .persist()
    .post(/\/api\/chat\.(postMessage|update)$/)
    .reply(function (path, body) {
      seen.push({ path, raw: body, call: readWebApiCall(this.req.headers, body) });
      return [200, { ok: true, channel: 'C0SOC', ts: '1741942000.000001' }];
    });
  return seen;
}

onlyNockedHttp();

describe('the card calls to the Slack Web API', () => {
  it('send the arguments as a JSON body, blocks as an array and the token in the Authorization header only', async () => {
    const seen = recordCalls();
    const api = cardApi();

    const posted = await api.postMessage({
      token: SLACK_BOT_TOKEN,
      channel: 'C0SOC',
      thread_ts: undefined,
      icon_url: null,
      ...MESSAGE,
      unfurl_links: false,
      unfurl_media: false,
    });
    await api.update({ token: SLACK_BOT_TOKEN, channel: 'C0SOC', ts: '1741942000.000001', ...MESSAGE });

    expect(posted).toMatchObject({ ok: true, channel: 'C0SOC', ts: '1741942000.000001' });
    expect(seen.map((s) => s.path)).toEqual(['/api/chat.postMessage', '/api/chat.update']);
    for (const { call } of seen) {
      expect(call.contentType).toBe('application/json; charset=utf-8');
      expect(call.authorization).toBe(`Bearer ${SLACK_BOT_TOKEN}`);
      expect(call.refusal).toBeUndefined();
      expect(call.args.blocks).toBeInstanceOf(Array);
      expect(call.args.blocks).toEqual(MESSAGE.blocks);
      expect(call.args).not.toHaveProperty('token');
    }
    expect(seen[0]?.raw).toEqual({
      channel: 'C0SOC',
      ...MESSAGE,
      unfurl_links: false,
      unfurl_media: false,
    });
    expect(seen[1]?.raw).toEqual({ channel: 'C0SOC', ts: '1741942000.000001', ...MESSAGE });
  });

  const answers: [string, (scope: nock.Interceptor) => nock.Scope][] = [
    [
      'a 429 with Retry-After',
      (i) => i.reply(429, { ok: false, error: 'ratelimited' }, { 'Retry-After': '7' }),
    ],
    ['a 500', (i) => i.reply(500, 'Internal Server Error', { 'content-type': 'text/plain' })],
    ['ok: false', (i) => i.reply(200, { ok: false, error: 'not_in_channel' })],
    [
      'no answer',
      (i) => i.replyWithError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })),
    ],
  ];

  it.each(answers)('fail on %s as the Web API client does', async (_answer, answer) => {
    const failure = async (call: () => Promise<unknown>) => {
      answer(nock(SLACK_API_ORIGIN).post('/api/chat.update'));
      const error = (await call().then(
        () => undefined,
        (e: unknown) => e,
      )) as Record<string, any>;
      return {
        class: error?.constructor?.name,
        code: error?.code,
        statusCode: error?.statusCode,
        retryAfter: error?.retryAfter,
        slackError: error?.data?.error,
        classified: classifySlackFailure(error),
      };
    };
    const args = { channel: 'C0SOC', ts: '1741942000.000001', ...MESSAGE };

    const expected = await failure(() => webClient().chat.update(args));
    const actual = await failure(() => cardApi().update({ token: SLACK_BOT_TOKEN, ...args }));

    expect(expected.code).toMatch(/^slack_webapi_/);
    expect(actual).toEqual(expected);
  });
});
