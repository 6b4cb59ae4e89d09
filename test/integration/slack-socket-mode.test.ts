import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DryRunExecutor } from '../../adapters/dry-run-executor.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { createPlatforms } from '../../bot/platforms.js';
import { createSlack, SOCKET_MODE_HTTP_MESSAGE } from '../../bot/slack/create-slack.js';
import { SOCKET_DOWN } from '../../bot/slack/socket-mode.js';
import { buttonValue } from '../../cards/slack/render.js';
import type { ActionRecord } from '../../core/model.js';
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { type PolicyFile, writePolicyFile } from '../support/config.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import {
  blockActionsPayload,
  buttons,
  type ClickedButton,
  fakeResponseUrls,
  fakeSlackApi,
  formBody,
  postSlack,
  readWebApiCall,
  type SentMessage,
  SLACK_API_ORIGIN,
  SLACK_API_URL,
  SLACK_BOT_TOKEN,
  slashCommandFields,
  viewSubmissionPayload,
} from '../support/slack.js';
import { FakeSocketModeSlack, SLACK_APP_TOKEN } from '../support/slack-socket.js';

const EXPERT = 'U0EXPERT1';
const CUSTOMER = 'U0CUSTOMER';
const CHANNEL = 'C0SOC';
const OTHER_TEAM = 'T0OTHERORG';

const POLICY = `
roles:
  experts: [slack:${EXPERT}]
  admins: []
exclusions:
  devices:
    - group: Finance-Servers
  users: []
channels:
  slack: ${CHANNEL}
`;

const approve = (actionId: string): ClickedButton => ({
  action_id: `approve:${actionId}`,
  value: buttonValue('48213', actionId),
});

let redis: TestRedis;
let policy: PolicyFile;
beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
  policy = writePolicyFile(POLICY);
});
afterAll(async () => {
  await redis.cleanup();
  policy.remove();
});

describe('Slack over Socket Mode', () => {
  let bot: BotServer;
  let store: RedisStore;
  let executor: DryRunExecutor;
  let fake: FakeSocketModeSlack;
  let slack: ReturnType<typeof fakeSlackApi>;
  let responses: ReturnType<typeof fakeResponseUrls>;

  /** The bot as main.ts builds it: the platforms of the configuration, over the one HTTP port. */
  const start = async () => {
    store = new RedisStore({ url: redis.url }, `${redis.prefix}${Math.random().toString(36).slice(2)}:`);
    executor = new DryRunExecutor();
    bot = await startBot({
      env: {
        SLACK_BOT_TOKEN,
        SLACK_APP_TOKEN,
        SLACK_API_URL,
        POLICY_FILE: policy.path,
      },
      parts: { store, storeKind: 'redis', executor },
      mounts: async (rt) => (await createPlatforms(rt, {})).mounts,
    });
  };
  const readyz = () => send(`${bot.url}/readyz`);
  const waitReady = () =>
    vi.waitFor(async () => expect((await readyz()).status).toBe(200), { timeout: 5_000, interval: 25 });
  const ingestAndWaitForCard = async (): Promise<SentMessage> => {
    const res = await send(`${bot.url}/api/incidents`, {
      token: INGEST_TOKEN,
      body: sampleIngestBody(shippedSample()),
    });
    expect(res.status).toBe(201);
    await vi.waitFor(() => expect(slack.posts).toHaveLength(1), { timeout: 5_000, interval: 25 });
    await vi.waitFor(async () => expect((await store.getCardRefs('48213')).slack).toBeDefined(), {
      timeout: 5_000,
      interval: 25,
    });
    return slack.posts[0] as SentMessage;
  };
  /** Click over the socket; the action as the store holds it is read the moment the ack arrives. */
  const click = (userId: string, button: ClickedButton, overrides: Record<string, unknown> = {}) =>
    fake.send<ActionRecord | null>('interactive', blockActionsPayload(userId, button, overrides), {
      onAck: async () => store.getAction('48213', button.value ? JSON.parse(button.value).actionId : ''),
    });
  const waitForCardUpdate = (text: string) =>
    vi.waitFor(
      () => {
        const last = slack.updates.at(-1);
        expect(last?.channel).toBe(CHANNEL);
        expect(last?.ts).toBe('1741942000.000001');
        expect(JSON.stringify(last?.blocks)).toContain(text);
      },
      { timeout: 5_000, interval: 25 },
    );

  beforeEach(async () => {
    nock.disableNetConnect();
    nock.enableNetConnect(/127\.0\.0\.1|localhost/);
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    fake = await FakeSocketModeSlack.start();
  });
  afterEach(async () => {
    await bot?.close();
    await fake.stop();
    nock.cleanAll();
    nock.enableNetConnect();
  });

  it('records an approval clicked over the socket before acknowledging it, and updates the card with chat.update', async () => {
    await start();
    await waitReady();
    expect(fake.opens).toEqual([{ authorization: `Bearer ${SLACK_APP_TOKEN}` }]);
    const card = await ingestAndWaitForCard();
    expect(buttons(card.blocks).map((b) => b.action_id)).toContain('approve:act-1');

    const { ack, seen } = await click(EXPERT, approve('act-1'));

    expect(ack.envelope_id).toEqual(expect.any(String));
    expect(seen).toMatchObject({ decidedBy: `slack:${EXPERT}` });
    expect(['approved', 'executing', 'succeeded']).toContain(seen?.state);
    await vi.waitFor(() => expect(executor.records).toHaveLength(1), { timeout: 5_000, interval: 25 });
    expect(executor.records[0]).toMatchObject({ actionId: 'act-1', approvedBy: `slack:${EXPERT}` });
    await waitForCardUpdate(`Isolated by @${EXPERT}`);
    expect(buttons(slack.updates.at(-1)?.blocks ?? []).map((b) => b.action_id)).not.toContain(
      'approve:act-1',
    );
    expect(slack.posts).toHaveLength(1);
    expect(responses).toEqual([]);
    expect(fake.strays).toEqual([]);
  });

  it('answers /mdr pending in the acknowledgement of the slash command envelope', async () => {
    await start();
    await waitReady();
    await ingestAndWaitForCard();

    const { ack } = await fake.send('slash_commands', slashCommandFields(CUSTOMER, 'pending'), {
      acceptsResponsePayload: true,
    });

    expect(ack.payload).toMatchObject({ response_type: 'ephemeral' });
    expect(buttons((ack.payload?.blocks as any[]) ?? []).map((b) => b.action_id)).toEqual(['markDone:act-5']);
    expect(JSON.stringify(ack.payload)).toContain('48213:act-5');
  });

  it('skips a task through the Skip modal over the socket: a blank reason is answered in the ack, a reason is recorded before it', async () => {
    const opened: { trigger_id: string; view: any }[] = [];
    nock(SLACK_API_ORIGIN)
      .persist()
      .post('/api/views.open')
      .reply(function (_uri, body) {
        const { args } = readWebApiCall(this.req.headers, body);
        opened.push({ trigger_id: args.trigger_id ?? '', view: args.view ?? {} });
        return [200, { ok: true, view: { id: `V0SKIP${opened.length}`, ...opened.at(-1)?.view } }];
      });
    await start();
    await waitReady();
    const card = await ingestAndWaitForCard();
    const skip = buttons(card.blocks).find((b) => b.action_id === 'skip:act-5');
    expect(skip?.value).toBe(buttonValue('48213', 'act-5'));

    const payload = blockActionsPayload(CUSTOMER, { action_id: 'skip:act-5', value: skip?.value ?? '' });
    await fake.send('interactive', payload);
    await vi.waitFor(() => expect(opened).toHaveLength(1), { timeout: 5_000, interval: 25 });
    const [{ trigger_id, view }] = opened as [(typeof opened)[number]];
    expect(trigger_id).toBe(payload.trigger_id);

    const blank = await fake.send('interactive', viewSubmissionPayload(CUSTOMER, view, '  '), {
      acceptsResponsePayload: true,
    });
    expect(blank.ack.payload).toEqual({
      response_action: 'errors',
      errors: { reason: 'say why the task is skipped: skip <taskId> <reason>' },
    });
    const done = await fake.send('interactive', viewSubmissionPayload(CUSTOMER, view, 'server rebuilt'), {
      acceptsResponsePayload: true,
      onAck: () => store.getAction('48213', 'act-5'),
    });

    expect(done.ack.payload).toEqual({ response_action: 'clear' });
    expect(done.seen).toMatchObject({
      state: 'skippedByCustomer',
      skippedBy: `slack:${CUSTOMER}`,
      skipReason: 'server rebuilt',
    });
    await waitForCardUpdate('Reason: server rebuilt');
  });

  it('is not ready while the socket is down, opens a new one after Slack closes it, and takes clicks on it', async () => {
    await start();
    await waitReady();
    await ingestAndWaitForCard();
    fake.holdHello();

    fake.closeCurrent();

    await vi.waitFor(
      async () => {
        const res = await readyz();
        expect(res.status).toBe(503);
        expect(res.body.error).toMatchObject({
          code: SOCKET_DOWN,
          message: expect.stringContaining('Socket Mode connection is down'),
        });
      },
      { timeout: 5_000, interval: 25 },
    );
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(2), { timeout: 5_000, interval: 25 });
    expect(fake.opens).toHaveLength(2);
    expect((await readyz()).status).toBe(503);
    fake.releaseHello();
    await waitReady();

    const { seen } = await click(EXPERT, approve('act-1'));

    expect(seen).toMatchObject({ decidedBy: `slack:${EXPERT}` });
    await waitForCardUpdate(`Isolated by @${EXPERT}`);
    expect(executor.records.map((r) => r.actionId)).toEqual(['act-1']);
  });

  it('opens a new socket when Slack sends disconnect (refresh_requested, link_disabled), closing the old one itself', async () => {
    await start();
    await waitReady();
    await ingestAndWaitForCard();

    for (const [n, reason] of [
      [1, 'refresh_requested'],
      [2, 'link_disabled'],
    ] as const) {
      const old = fake.current;
      fake.disconnect(reason);
      await vi.waitFor(() => expect(old?.readyState).toBe(old?.CLOSED), { timeout: 5_000, interval: 25 });
      await vi.waitFor(() => expect(fake.current).toBe(fake.sockets[n]), { timeout: 5_000, interval: 25 });
      await waitReady();
    }

    expect(fake.opens).toHaveLength(3);
    const { ack } = await fake.send('slash_commands', slashCommandFields(CUSTOMER, 'pending'));
    expect(buttons((ack.payload?.blocks as any[]) ?? []).map((b) => b.action_id)).toEqual(['markDone:act-5']);
  });

  it('refuses a click from another workspace: acknowledged, answered to the clicker alone, audited, nothing decided', async () => {
    await start();
    await waitReady();
    await ingestAndWaitForCard();

    const { seen } = await click(EXPERT, approve('act-1'), {
      team: { id: OTHER_TEAM, domain: 'other' },
      user: { id: EXPERT, username: 'x', name: 'x', team_id: OTHER_TEAM },
    });

    expect(seen?.state).toBe('proposed');
    await vi.waitFor(() => expect(responses).toHaveLength(1), { timeout: 5_000, interval: 25 });
    expect(responses[0]?.body).toMatchObject({
      response_type: 'ephemeral',
      text: expect.stringContaining('workspace'),
    });
    const refused = (await store.listAudit()).filter((e) => e.outcome === 'refused');
    expect(refused).toEqual([
      expect.objectContaining({
        actor: `slack-unverified:${OTHER_TEAM}:${EXPERT}`,
        event: 'approve',
        detail: expect.stringContaining(`wrong_workspace: a request from Slack workspace ${OTHER_TEAM}`),
      }),
    ]);
    expect(executor.records).toEqual([]);
  });

  it('acknowledges an envelope whose payload is not shaped as Slack sends it, without reaching the core', async () => {
    await start();
    await waitReady();
    await ingestAndWaitForCard();
    const auditBefore = await store.listAudit('48213');

    const { ack } = await fake.send('interactive', {
      ...blockActionsPayload(EXPERT, approve('act-1')),
      actions: 'approve:act-1',
    });

    expect(ack.payload).toEqual({});
    expect(await store.getAction('48213', 'act-1')).toMatchObject({ state: 'proposed' });
    expect(await store.listAudit('48213')).toEqual(auditBefore);
    expect(responses).toEqual([]);
  });

  it('answers 404 on POST /slack/events, where nothing is received in Socket Mode', async () => {
    await start();
    await waitReady();

    const res = await postSlack(bot.url, formBody(slashCommandFields(CUSTOMER, 'pending')));

    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: 'not_found', message: SOCKET_MODE_HTTP_MESSAGE } });
  });

  it('keeps trying after apps.connections.open is refused and after the socket is refused, not ready until it is open', async () => {
    fake.refuseOpens(1, 'invalid_auth');
    fake.refuseSockets(1);
    store = new RedisStore({ url: redis.url }, `${redis.prefix}${Math.random().toString(36).slice(2)}:`);
    bot = await startBot({
      env: { SLACK_BOT_TOKEN, SLACK_APP_TOKEN, SLACK_API_URL, POLICY_FILE: policy.path },
      parts: { store, storeKind: 'redis' },
      mounts: (rt) => {
        const socketSlack = createSlack(rt, { socketRetry: { firstMs: 300, maxMs: 600 } });
        return {
          slack: socketSlack.handler,
          readiness: socketSlack.readiness ? [socketSlack.readiness] : [],
        };
      },
    });
    const downWith = (reason: string) =>
      vi.waitFor(
        async () => {
          const res = await readyz();
          expect(res.status).toBe(503);
          expect(res.body.error).toMatchObject({
            code: SOCKET_DOWN,
            message: expect.stringContaining(reason),
          });
        },
        { timeout: 5_000, interval: 20 },
      );

    await downWith('invalid_auth');
    await downWith("the WebSocket closed before Slack's hello");
    await waitReady();
    expect(fake.sockets).toHaveLength(1);
    expect(fake.opens).toHaveLength(3);
  });
});
