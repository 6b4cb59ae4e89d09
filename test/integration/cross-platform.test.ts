import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it, vi } from 'vitest';
import { RedisStore } from '../../adapters/redis-store.js';
import { createSlack } from '../../bot/slack/create-slack.js';
import { createTeams } from '../../bot/teams/index.js';
import { buttonValue } from '../../cards/slack/render.js';
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import {
  buttons,
  clickButton,
  fakeAuthTest,
  RESPONSE_URL_ORIGIN,
  readWebApiCall,
  type SentMessage,
  SLACK_API_ORIGIN,
  SLACK_API_URL,
  SLACK_BOT_TOKEN,
  SLACK_SIGNING_SECRET,
  sentMessage,
} from '../support/slack.js';
import {
  botAddedToTeam,
  CHANNEL_ID,
  cardAction,
  channelToken,
  EXPERT_USER,
  fakeBotFramework,
  TEAMS_AUTH_ENV,
  TEAMS_SERVICE_URL,
} from '../support/teams.js';

const INCIDENT = '48213';
const WAIT = { timeout: 10_000, interval: 50 };

let redis: TestRedis;
let policyDir: string;
let bot: BotServer;
let store: RedisStore;

beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
  policyDir = mkdtempSync(join(tmpdir(), 'cross-platform-'));
  writeFileSync(
    join(policyDir, 'policy.yaml'),
    `roles:
  experts: [slack:U0EXPERT1, teams:${EXPERT_USER.aadObjectId}]
  admins: []
exclusions:
  devices:
    - group: Finance-Servers
channels:
  slack: C0SOC
`,
  );
});
afterAll(async () => {
  await redis.cleanup();
  rmSync(policyDir, { recursive: true, force: true });
});

beforeEach(() => {
  fakeBotFramework();
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
});
afterEach(async () => {
  await bot?.close();
  nock.cleanAll();
  nock.enableNetConnect();
});

/** Fake Slack Web API and Bot Connector, recording what each platform was sent. */
function fakePlatforms() {
  const slack = { posts: [] as SentMessage[], updates: [] as SentMessage[] };
  const teams = { posts: [] as any[], puts: [] as any[] };
  fakeAuthTest();
  nock(SLACK_API_ORIGIN)
    .persist()
    .post('/api/chat.postMessage')
    .reply(function (_uri, body) {
      const message = sentMessage(readWebApiCall(this.req.headers, body));
      slack.posts.push(message);
      return [200, { ok: true, channel: message.channel, ts: `1741942000.00000${slack.posts.length}` }];
    })
    .post('/api/chat.update')
    .reply(function (_uri, body) {
      const message = sentMessage(readWebApiCall(this.req.headers, body));
      slack.updates.push(message);
      return [200, { ok: true, channel: message.channel, ts: message.ts }];
    });
  nock(RESPONSE_URL_ORIGIN).persist().post(/.*/).reply(200, { ok: true });
  const connector = new URL(TEAMS_SERVICE_URL).origin;
  nock(connector)
    .persist()
    .post(/\/v3\/conversations\//)
    .reply((_uri, body) => {
      teams.posts.push(body);
      return [200, { id: `card-${teams.posts.length}` }];
    })
    .put(/\/v3\/conversations\//)
    .reply((uri, body) => {
      teams.puts.push({ uri, body });
      return [200, { id: (body as { id: string }).id }];
    });
  return { slack, teams };
}

const startBoth = async () => {
  store = new RedisStore({ url: redis.url }, `${redis.prefix}${Math.random().toString(36).slice(2)}:`);
  bot = await startBot({
    env: {
      SLACK_BOT_TOKEN,
      SLACK_SIGNING_SECRET,
      SLACK_API_URL,
      POLICY_FILE: join(policyDir, 'policy.yaml'),
      ...TEAMS_AUTH_ENV,
    },
    parts: { store, storeKind: 'redis' },
    mounts: (rt) => ({ slack: createSlack(rt).handler, teams: createTeams(rt, TEAMS_AUTH_ENV).handler }),
  });
  await send(`${bot.url}/api/messages`, { body: botAddedToTeam(), token: channelToken() });
  await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body: sampleIngestBody(shippedSample()) });
  await vi.waitFor(async () => {
    const refs = await store.getCardRefs(INCIDENT);
    expect(refs.slack?.ts).toBeTruthy();
    expect(refs.teams?.[0]?.activityId).toBeTruthy();
  }, WAIT);
  return store.getCardRefs(INCIDENT);
};

it('an approval made in Teams updates the Slack message', async () => {
  const { slack, teams } = fakePlatforms();
  const refs = await startBoth();
  const click = await send(`${bot.url}/api/messages`, {
    token: channelToken(),
    body: cardAction(
      'approve',
      { incidentId: INCIDENT, actionId: 'act-1' },
      { replyToId: refs.teams![0]!.activityId },
    ),
  });
  expect(click.status).toBe(200);
  await vi.waitFor(() => {
    const update = slack.updates.at(-1);
    expect(update?.ts).toBe(refs.slack!.ts);
    expect(buttons(update?.blocks ?? []).map((b) => b.action_id)).toContain('markDone:act-5');
    expect(buttons(update?.blocks ?? []).map((b) => b.action_id)).not.toContain('approve:act-1');
  }, WAIT);
  expect(slack.posts).toHaveLength(1);
  expect(teams.posts).toHaveLength(1);
});

it('a task marked done in Slack updates the Teams card', async () => {
  const { slack, teams } = fakePlatforms();
  const refs = await startBoth();
  const click = await clickButton(bot.url, 'U0CUSTOMER', {
    action_id: 'markDone:act-5',
    value: buttonValue(INCIDENT, 'act-5'),
    text: 'Mark done',
  });
  expect(click.status).toBe(200);
  await vi.waitFor(
    async () => expect((await store.getAction(INCIDENT, 'act-5'))?.state).toBe('doneByCustomer'),
    WAIT,
  );
  await vi.waitFor(() => {
    const put = teams.puts.at(-1);
    expect(put?.uri).toContain(`${encodeURIComponent(CHANNEL_ID)}/activities/${refs.teams![0]!.activityId}`);
    expect(JSON.stringify(put?.body)).not.toContain('"verb":"markDone"');
  }, WAIT);
  expect(teams.posts).toHaveLength(1);
  expect(slack.posts).toHaveLength(1);
});
