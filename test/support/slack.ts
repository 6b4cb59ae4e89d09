import { createHmac } from 'node:crypto';
import nock from 'nock';

/** The signing secret the Slack tests configure (SLACK_SIGNING_SECRET). */
export const SLACK_SIGNING_SECRET = 'test-signing-secret-0123456789abcdef';
/** The bot token the Slack tests configure (SLACK_BOT_TOKEN). */
export const SLACK_BOT_TOKEN = 'xoxb-test-0000-bot-token';
/** Where the tests point the Web API (SLACK_API_URL); nock answers for it. */
export const SLACK_API_ORIGIN = 'https://slack.test.local';
/** SLACK_API_URL of the tests: the Web API under a path prefix, as Slack's own URL has. */
export const SLACK_API_URL = `${SLACK_API_ORIGIN}/api/`;
/** Where the payloads' `response_url`s point; nock answers for it. */
export const RESPONSE_URL_ORIGIN = 'https://hooks.slack.com';

const TEAM = { id: 'T0CONTOSO', domain: 'contoso-soc' };
/** The workspace the tests' bot token belongs to; every payload names it unless overridden. */
export const SLACK_TEAM_ID = TEAM.id;

/** `auth.test` for the tests' bot token, as Slack answers it. */
export const AUTH_TEST_RESPONSE = {
  ok: true,
  url: `https://${TEAM.domain}.slack.com/`,
  team: 'Contoso SOC',
  user: 'mdr-bot',
  team_id: TEAM.id,
  user_id: 'U0MDRBOT',
  bot_id: 'B0MDRBOT',
  is_enterprise_install: false,
};

/** The fake Web API's `auth.test` (called once at start to learn the token's workspace). */
export function fakeAuthTest(response: Record<string, unknown> = AUTH_TEST_RESPONSE): nock.Scope {
  return nock(SLACK_API_ORIGIN).persist().post('/api/auth.test').reply(200, response);
}
let sequence = 0;
const next = () => {
  sequence += 1;
  return sequence;
};

/** `X-Slack-Signature` and `X-Slack-Request-Timestamp` exactly as Slack computes them. */
export function slackSignatureHeaders(
  rawBody: string,
  options: { secret?: string; timestamp?: number } = {},
): Record<string, string> {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const hmac = createHmac('sha256', options.secret ?? SLACK_SIGNING_SECRET);
  hmac.update(`v0:${timestamp}:${rawBody}`);
  return {
    'x-slack-request-timestamp': String(timestamp),
    'x-slack-signature': `v0=${hmac.digest('hex')}`,
  };
}

/** A form-encoded body as Slack sends it (`payload=<json>` for interactivity, fields for commands). */
export function formBody(fields: Record<string, string>): string {
  return new URLSearchParams(fields).toString();
}

/** What a button on a card carries: the renderer's action id and value. */
export interface ClickedButton {
  action_id: string;
  value: string;
  text?: string;
  block_id?: string;
}

/** A `block_actions` payload shaped like Slack's for a click on a message button; `overrides` win. */
export function blockActionsPayload(
  userId: string,
  button: ClickedButton,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const n = next();
  const messageTs = '1741942000.000100';
  return {
    type: 'block_actions',
    user: { id: userId, username: userId.toLowerCase(), name: userId.toLowerCase(), team_id: TEAM.id },
    api_app_id: 'A0MDRBOT',
    token: 'legacy-verification-token',
    container: { type: 'message', message_ts: messageTs, channel_id: 'C0SOC', is_ephemeral: false },
    trigger_id: `${n}.1234567890.abcdef0123456789`,
    team: TEAM,
    enterprise: null,
    is_enterprise_install: false,
    channel: { id: 'C0SOC', name: 'soc' },
    message: {
      type: 'message',
      subtype: 'bot_message',
      text: 'High severity incident 48213',
      ts: messageTs,
      bot_id: 'B0MDRBOT',
      blocks: [],
    },
    state: { values: {} },
    response_url: `${RESPONSE_URL_ORIGIN}/actions/${TEAM.id}/${1000 + n}/resp${n}`,
    actions: [
      {
        action_id: button.action_id,
        block_id: button.block_id ?? `action:${button.action_id.split(':')[1] ?? ''}`,
        text: { type: 'plain_text', text: button.text ?? 'Approve', emoji: true },
        value: button.value,
        style: 'primary',
        type: 'button',
        action_ts: `${Math.floor(Date.now() / 1000)}.${String(n).padStart(6, '0')}`,
      },
    ],
    ...overrides,
  };
}

/** A modal as the bot opened it (`views.open`): what a submission of it carries back. */
export interface OpenedView {
  callback_id: string;
  private_metadata: string;
  blocks: { type: string; block_id?: string; element?: { action_id?: string } }[];
}

/**
 * A `view_submission` payload shaped like Slack's for `view` submitted by `userId`, each input block's
 * element holding `typed` (a plain_text_input's value); `overrides` win.
 */
export function viewSubmissionPayload(
  userId: string,
  view: OpenedView,
  typed: string,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const n = next();
  const values: Record<string, Record<string, { type: string; value: string }>> = {};
  for (const block of view.blocks) {
    if (block.type !== 'input' || !block.block_id || !block.element?.action_id) continue;
    values[block.block_id] = { [block.element.action_id]: { type: 'plain_text_input', value: typed } };
  }
  return {
    type: 'view_submission',
    team: TEAM,
    user: { id: userId, username: userId.toLowerCase(), name: userId.toLowerCase(), team_id: TEAM.id },
    api_app_id: 'A0MDRBOT',
    token: 'legacy-verification-token',
    trigger_id: `${n}.1234567890.0a1b2c3d4e5f6a7b`,
    view: {
      id: `V0SKIP${n}`,
      team_id: TEAM.id,
      type: 'modal',
      blocks: view.blocks,
      private_metadata: view.private_metadata,
      callback_id: view.callback_id,
      state: { values },
      hash: `1741942000.hash${n}`,
      title: { type: 'plain_text', text: 'Skip task', emoji: true },
      clear_on_close: false,
      notify_on_close: false,
      close: { type: 'plain_text', text: 'Cancel', emoji: true },
      submit: { type: 'plain_text', text: 'Skip task', emoji: true },
      previous_view_id: null,
      root_view_id: `V0SKIP${n}`,
      app_id: 'A0MDRBOT',
      external_id: '',
      app_installed_team_id: TEAM.id,
      bot_id: 'B0MDRBOT',
    },
    response_urls: [],
    is_enterprise_install: false,
    enterprise: null,
    ...overrides,
  };
}

/** Submit `view` as `userId` with `typed` in its input: a signed `view_submission` request to the bot. */
export function submitView(
  url: string,
  userId: string,
  view: OpenedView,
  typed: string,
  overrides: Record<string, unknown> = {},
): Promise<{ status: number; body: any; ms: number }> {
  const raw = formBody({ payload: JSON.stringify(viewSubmissionPayload(userId, view, typed, overrides)) });
  return postSlack(url, raw);
}

/** The form fields of a `/mdr` slash command, shaped like Slack's; `overrides` win. */
export function slashCommandFields(
  userId: string,
  text: string,
  overrides: Record<string, string> = {},
): Record<string, string> {
  const n = next();
  return {
    token: 'legacy-verification-token',
    team_id: TEAM.id,
    team_domain: TEAM.domain,
    channel_id: 'C0SOC',
    channel_name: 'soc',
    user_id: userId,
    user_name: userId.toLowerCase(),
    command: '/mdr',
    text,
    api_app_id: 'A0MDRBOT',
    is_enterprise_install: 'false',
    response_url: `${RESPONSE_URL_ORIGIN}/commands/${TEAM.id}/${2000 + n}/cmd${n}`,
    trigger_id: `${n}.1234567890.fedcba9876543210`,
    ...overrides,
  };
}

/** POST a form body to the bot's Slack endpoint, signed (or with the headers given instead). */
export async function postSlack(
  url: string,
  rawBody: string,
  headers: Record<string, string> = slackSignatureHeaders(rawBody),
): Promise<{ status: number; body: any; ms: number }> {
  const started = Date.now();
  const res = await fetch(`${url}/slack/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: rawBody,
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body, ms: Date.now() - started };
}

/** Click a button as `userId`: a signed `block_actions` request to the bot. */
export function clickButton(
  url: string,
  userId: string,
  button: ClickedButton,
  overrides: Record<string, unknown> = {},
): Promise<{ status: number; body: any; ms: number }> {
  const raw = formBody({ payload: JSON.stringify(blockActionsPayload(userId, button, overrides)) });
  return postSlack(url, raw);
}

/** Run `/mdr <text>` as `userId`: a signed slash-command request to the bot. */
export function slashCommand(
  url: string,
  userId: string,
  text: string,
): Promise<{ status: number; body: any; ms: number }> {
  return postSlack(url, formBody(slashCommandFields(userId, text)));
}

/** Arguments Slack reads as JSON text when a Web API call is form-encoded. */
const JSON_FORM_FIELDS = new Set(['blocks', 'attachments', 'metadata', 'view']);

/** A Web API call as Slack reads it. */
export interface WebApiCall {
  /** The request's content type, as sent. */
  contentType: string;
  /** The arguments: a JSON body as sent; a form body's fields, its JSON fields (blocks, view) parsed. */
  args: Record<string, any>;
  authorization: string | undefined;
  /** What Slack answers instead of doing the call (`not_authed`: no token where Slack looks for one). */
  refusal?: string;
}

/**
 * Read a Web API call the way Slack does, by its content type: a JSON body (Slack reads the token of a
 * JSON call from its Authorization header only), or a form body with objects as JSON text, which is
 * what Bolt's Web API client sends. Any other body is an error: Slack would not read it either.
 * `body` is the raw text, or the object nock parsed a JSON body into.
 */
export function readWebApiCall(headers: Record<string, unknown>, body: unknown): WebApiCall {
  const contentType = String(headers['content-type'] ?? '');
  const authorization = headers.authorization as string | undefined;
  const bearer = /^Bearer \S+$/.test(authorization ?? '');
  if (contentType.startsWith('application/json')) {
    const args = typeof body === 'string' ? JSON.parse(body) : body;
    if (typeof args !== 'object' || args === null || Array.isArray(args))
      throw new Error(`fake Slack: a JSON body that is not an object: ${JSON.stringify(body)}`);
    return { contentType, args, authorization, ...(bearer ? {} : { refusal: 'not_authed' }) };
  }
  if (contentType.startsWith('application/x-www-form-urlencoded')) {
    const args: Record<string, any> = {};
    for (const [key, value] of new URLSearchParams(String(body)))
      args[key] = JSON_FORM_FIELDS.has(key) ? JSON.parse(value) : value;
    return { contentType, args, authorization, ...(bearer || args.token ? {} : { refusal: 'not_authed' }) };
  }
  throw new Error(`fake Slack: a Web API call with content-type "${contentType}"`);
}

/** A message the bot sent through the fake Web API. */
export interface SentMessage {
  channel: string;
  ts?: string;
  thread_ts?: string;
  text: string;
  blocks: any[];
  contentType: string;
  authorization: string | undefined;
  at: number;
}

/** The message of a `chat.postMessage` or `chat.update` call, read as Slack reads it. */
export function sentMessage({ contentType, args, authorization }: WebApiCall): SentMessage {
  return {
    channel: args.channel ?? '',
    ...(args.ts ? { ts: args.ts } : {}),
    ...(args.thread_ts ? { thread_ts: args.thread_ts } : {}),
    text: args.text ?? '',
    blocks: args.blocks ?? [],
    contentType,
    authorization,
    at: Date.now(),
  };
}

/** The fake Slack Web API: records every chat.postMessage / chat.update and answers like Slack. */
export function fakeSlackApi() {
  const posts: SentMessage[] = [];
  const updates: SentMessage[] = [];
  fakeAuthTest();
  nock(SLACK_API_ORIGIN)
    .persist()
    .post('/api/chat.postMessage')
    .reply(function (_uri, body) {
      const call = readWebApiCall(this.req.headers, body);
      if (call.refusal) return [200, { ok: false, error: call.refusal }];
      const message = sentMessage(call);
      posts.push(message);
      const ts = `1741942000.${String(posts.length).padStart(6, '0')}`;
      return [200, { ok: true, channel: message.channel, ts, message: { ts, text: message.text } }];
    })
    .post('/api/chat.update')
    .reply(function (_uri, body) {
      const call = readWebApiCall(this.req.headers, body);
      if (call.refusal) return [200, { ok: false, error: call.refusal }];
      const message = sentMessage(call);
      updates.push(message);
      return [200, { ok: true, channel: message.channel, ts: message.ts, text: message.text }];
    });
  return { posts, updates };
}

/**
 * A thinner fake Web API than fakeSlackApi: keeps the arguments of chat.postMessage and chat.update as
 * JSON text (read as Slack reads them, whatever the encoding), answers on `channel`, numbers the posts'
 * ts with `numberPosts` (else every card is ts 1741942000.000001), and accepts every post to a response
 * URL.
 */
export function recordSlackBodies({
  posts = [] as string[],
  updates = [] as string[],
  channel = 'C0SOC',
  numberPosts = false,
} = {}) {
  fakeAuthTest();
  nock(SLACK_API_ORIGIN)
    .persist()
    .post('/api/chat.postMessage')
    .reply(function (_uri, body) {
      const { args, refusal } = readWebApiCall(this.req.headers, body);
      if (refusal) return [200, { ok: false, error: refusal }];
      posts.push(JSON.stringify(args));
      const ts = numberPosts ? `1741942000.00000${posts.length}` : '1741942000.000001';
      return [200, { ok: true, channel, ts }];
    })
    .post('/api/chat.update')
    .reply(function (_uri, body) {
      const { args, refusal } = readWebApiCall(this.req.headers, body);
      if (refusal) return [200, { ok: false, error: refusal }];
      updates.push(JSON.stringify(args));
      return [200, { ok: true, channel, ts: '1741942000.000001' }];
    });
  nock(RESPONSE_URL_ORIGIN).persist().post(/.*/).reply(200, 'ok');
  return { posts, updates };
}

/** Records what the bot sends to the payloads' response URLs (ephemeral answers). */
export function fakeResponseUrls() {
  const responses: { path: string; body: any }[] = [];
  nock(RESPONSE_URL_ORIGIN)
    .persist()
    .post(/.*/)
    .reply(200, (uri, body) => {
      responses.push({ path: uri, body });
      return 'ok';
    });
  return responses;
}

/** Every button in a message's actions blocks. */
export function buttons(blocks: any[]): { action_id: string; value?: string }[] {
  return blocks.filter((b) => b.type === 'actions').flatMap((b) => b.elements);
}
