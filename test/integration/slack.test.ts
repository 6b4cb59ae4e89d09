import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { BullMqQueue } from '../../adapters/bullmq-queue.js';
import { DefenderExecutor } from '../../adapters/defender-executor.js';
import { DryRunExecutor } from '../../adapters/dry-run-executor.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { StaticAssetDirectory } from '../../adapters/static-directory.js';
import { createLogger } from '../../bot/logger.js';
import { EXECUTE_JOB, JOB_LANES, jobIdOf, type RuntimeParts } from '../../bot/runtime.js';
import { slackChannelPause } from '../../bot/slack/card-publisher.js';
import { createSlack } from '../../bot/slack/create-slack.js';
import { buttonValue } from '../../cards/slack/render.js';
import type { AssetDirectory } from '../../core/ports.js';
import { rejectAction } from '../../core/reject-action.js';
import { type BotServer, drained, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { type PolicyFile, writePolicyFile } from '../support/config.js';
import { SAMPLE, sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import {
  blockActionsPayload,
  buttons,
  clickButton,
  fakeResponseUrls,
  fakeSlackApi,
  formBody,
  postSlack,
  readWebApiCall,
  type SentMessage,
  SLACK_API_ORIGIN,
  SLACK_API_URL,
  SLACK_BOT_TOKEN,
  SLACK_SIGNING_SECRET,
  sentMessage,
  slackSignatureHeaders,
  slashCommand,
  submitView,
} from '../support/slack.js';
import {
  answerStatusQuery,
  fakeTime,
  fixture,
  GRAPH_URL,
  MDE_ORIGIN,
  MDE_TOKEN,
  MDE_URL,
  nockLogin,
  testCredential,
} from './defender-helpers.js';

const EXPERT = 'U0EXPERT1';
const EXPERT2 = 'U0EXPERT2';
const ADMIN = 'U0ADMIN1';
const CUSTOMER = 'U0CUSTOMER';
const CHANNEL = 'C0SOC';

const POLICY = `
roles:
  experts: [slack:${EXPERT}, slack:${EXPERT2}]
  admins: [slack:${ADMIN}]
exclusions:
  devices:
    - group: Finance-Servers
  users: []
channels:
  slack: ${CHANNEL}
reminders:
  pendingTaskHours: 24
`;

const approve = (actionId: string, incidentId = '48213') => ({
  action_id: `approve:${actionId}`,
  value: buttonValue(incidentId, actionId),
});
const markDone = (actionId: string, incidentId = '48213') => ({
  action_id: `markDone:${actionId}`,
  value: buttonValue(incidentId, actionId),
  text: 'Mark done',
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

describe('Slack through the real HTTP endpoint', () => {
  let bot: BotServer;
  let store: RedisStore;
  let executor: DryRunExecutor;
  let slack: ReturnType<typeof fakeSlackApi>;
  let responses: ReturnType<typeof fakeResponseUrls>;

  const start = async (parts: Partial<RuntimeParts> = {}, env: Record<string, string> = {}) => {
    store = new RedisStore({ url: redis.url }, `${redis.prefix}${Math.random().toString(36).slice(2)}:`);
    executor = new DryRunExecutor();
    bot = await startBot({
      env: {
        SLACK_BOT_TOKEN,
        SLACK_SIGNING_SECRET,
        SLACK_API_URL,
        POLICY_FILE: policy.path,
        ...env,
      },
      parts: { store, storeKind: 'redis', executor, ...parts },
      mounts: (rt) => ({ slack: createSlack(rt).handler }),
    });
  };
  const ingest = async (body: Record<string, any> = sampleIngestBody(shippedSample())) => {
    const res = await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body });
    expect(res.status).toBeLessThan(300);
  };
  const ingestAndWaitForCard = async () => {
    await ingest();
    await vi.waitFor(() => expect(slack.posts).toHaveLength(1), { timeout: 5_000, interval: 25 });
    // The card's reference is saved right after Slack answers the post.
    await vi.waitFor(async () => expect((await store.getCardRefs('48213')).slack).toBeDefined(), {
      timeout: 5_000,
      interval: 25,
    });
    return slack.posts[0] as SentMessage;
  };
  const state = async (actionId: string) => (await store.getAction('48213', actionId))?.state;

  beforeEach(() => {
    nock.disableNetConnect();
    nock.enableNetConnect(/127\.0\.0\.1|localhost/);
  });
  afterEach(async () => {
    await bot?.close();
    nock.cleanAll();
    nock.enableNetConnect();
  });

  it('posts one card with Approve buttons only on non-excluded assets, executes an expert approval once and shows the result', async () => {
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    await start();

    const card = await ingestAndWaitForCard();
    expect(card.channel).toBe(CHANNEL);
    expect(card.contentType).toBe('application/json; charset=utf-8');
    expect(card.authorization).toBe(`Bearer ${SLACK_BOT_TOKEN}`);
    expect(card.text).toContain('48213');
    const approveButtons = buttons(card.blocks).filter((b) => b.action_id.startsWith('approve:'));
    expect(approveButtons.map((b) => b.action_id).sort()).toEqual([
      'approve:act-1',
      'approve:act-3',
      'approve:act-4',
      'approve:act-6',
    ]);
    expect(approveButtons.map((b) => JSON.parse(b.value ?? ''))).toContainEqual({
      incidentId: '48213',
      actionId: 'act-1',
    });
    expect(buttons(card.blocks).map((b) => b.action_id)).toContain('markDone:act-5');

    // Slack wants the click acknowledged within 3 s: the answer must not wait for the execution.
    const click = await clickButton(bot.url, EXPERT, approve('act-1'));
    expect(click.status).toBe(200);

    await vi.waitFor(() => expect(executor.records).toHaveLength(1), { timeout: 5_000, interval: 25 });
    expect(executor.records[0]).toMatchObject({ actionId: 'act-1', approvedBy: `slack:${EXPERT}` });
    await vi.waitFor(
      () => {
        const last = slack.updates.at(-1);
        expect(last?.ts).toBe('1741942000.000001');
        expect(JSON.stringify(last?.blocks)).toContain(`Isolated by @${EXPERT}`);
      },
      { timeout: 5_000, interval: 50 },
    );
    expect(await state('act-1')).toBe('succeeded');
    expect(slack.posts).toHaveLength(1);
    expect(slack.updates.every((u) => u.channel === CHANNEL)).toBe(true);
    expect(slack.updates.every((u) => u.contentType === 'application/json; charset=utf-8')).toBe(true);
    expect(buttons(slack.updates.at(-1)?.blocks ?? []).map((b) => b.action_id)).not.toContain(
      'approve:act-1',
    );
    expect(responses).toEqual([]);
  });

  it('retries a failed isolation from the Retry button: one new request to Defender, and the action ends succeeded', async () => {
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    nockLogin();
    const machine = '4a1f9c2e7b3d8e06c5a2f1b9d7e3c8a0b6f2d4e1';
    const defender = nock(MDE_ORIGIN, { reqheaders: { authorization: `Bearer ${MDE_TOKEN}` } }).persist();
    const posts: string[] = [];
    // The device was offline: Defender's first isolation failed; the second one succeeds.
    const statusOf = (id: string) => (id === 'ma-0' ? 'Failed' : 'Succeeded');
    const machineAction = (id: string, status: string, comment: string) =>
      fixture('machine-action', { id, status, machineId: machine, requestorComment: comment });
    defender.post(`/prefix/api/machines/${machine}/isolate`).reply((_uri, body) => {
      const id = `ma-${posts.length}`;
      posts.push(id);
      return [201, machineAction(id, 'Pending', (body as { Comment?: string }).Comment ?? '')];
    });
    answerStatusQuery(defender, (id) => machineAction(id, statusOf(id), ''));
    await start(
      {
        executor: new DefenderExecutor({
          credential: testCredential(),
          defenderApiUrl: MDE_URL,
          graphApiUrl: GRAPH_URL,
          sleep: fakeTime().sleep,
        }),
      },
      { DEFENDER_FOLLOW_SECONDS: '1' },
    );
    await ingestAndWaitForCard();

    await clickButton(bot.url, EXPERT, approve('act-1'));
    await vi.waitFor(async () => expect(await state('act-1')).toBe('failed'), {
      timeout: 10_000,
      interval: 50,
    });
    await vi.waitFor(
      () => {
        const ids = buttons(slack.updates.at(-1)?.blocks ?? []).map((b) => b.action_id);
        expect(ids).toEqual(expect.arrayContaining(['retry:act-1', 'handover:act-1']));
      },
      { timeout: 5_000, interval: 50 },
    );
    expect(posts).toEqual(['ma-0']);
    const retryButton = buttons(slack.updates.at(-1)?.blocks ?? []).find(
      (b) => b.action_id === 'retry:act-1',
    ) as any;
    expect(retryButton.confirm).toMatchObject({
      title: { text: 'Retry the failed action?' },
      confirm: { text: 'Retry' },
      deny: { text: 'Cancel' },
    });

    const refused = await clickButton(bot.url, CUSTOMER, {
      action_id: 'retry:act-1',
      value: buttonValue('48213', 'act-1'),
    });
    expect(refused.status).toBe(200);
    await vi.waitFor(() => expect(responses).toHaveLength(1), { timeout: 5_000, interval: 25 });
    expect(JSON.stringify(responses[0]?.body)).toContain('only the MDR experts');
    expect(await state('act-1')).toBe('failed');

    const click = await clickButton(bot.url, EXPERT, {
      action_id: 'retry:act-1',
      value: buttonValue('48213', 'act-1'),
    });
    expect(click.status).toBe(200);
    await vi.waitFor(async () => expect(await state('act-1')).toBe('succeeded'), {
      timeout: 10_000,
      interval: 50,
    });
    expect(posts).toEqual(['ma-0', 'ma-1']);
    const action = await store.getAction('48213', 'act-1');
    expect(action).toMatchObject({ externalId: 'ma-1', attempt: 2, decidedBy: `slack:${EXPERT}` });
    expect(action?.error).toBeUndefined();
    const retries = (await store.listAudit('48213')).filter((e) => e.event === 'retry');
    expect(retries.map((e) => `${e.actor}:${e.outcome}`)).toEqual([
      `slack:${CUSTOMER}:refused`,
      `slack:${EXPERT}:ok`,
    ]);
    await vi.waitFor(
      () => {
        const last = slack.updates.at(-1);
        expect(JSON.stringify(last?.blocks)).toContain(`Isolated by @${EXPERT}`);
        expect(buttons(last?.blocks ?? []).map((b) => b.action_id)).not.toContain('retry:act-1');
      },
      { timeout: 5_000, interval: 50 },
    );
  });

  it('runs the antivirus scan the expert chose: Approve full scan ends in a POST with ScanType Full; a forged scan type is refused', async () => {
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    nockLogin();
    const machine = '4a1f9c2e7b3d8e06c5a2f1b9d7e3c8a0b6f2d4e1';
    const defender = nock(MDE_ORIGIN, { reqheaders: { authorization: `Bearer ${MDE_TOKEN}` } }).persist();
    const sent: { Comment: string; ScanType: string }[] = [];
    const machineAction = (id: string, status: string) =>
      fixture('machine-action', { id, type: 'RunAntiVirusScan', status, machineId: machine });
    defender.post(`/prefix/api/machines/${machine}/runAntiVirusScan`).reply((_uri, body) => {
      sent.push(body as { Comment: string; ScanType: string });
      return [201, machineAction(`ma-${sent.length}`, 'Pending')];
    });
    answerStatusQuery(defender, (id) => machineAction(id, 'Succeeded'));
    await start(
      {
        executor: new DefenderExecutor({
          credential: testCredential(),
          defenderApiUrl: MDE_URL,
          graphApiUrl: GRAPH_URL,
          sleep: fakeTime().sleep,
        }),
      },
      { DEFENDER_FOLLOW_SECONDS: '1' },
    );
    const body = sampleIngestBody(shippedSample());
    body.managedResponse.actions.push({
      id: 'act-7',
      type: 'runAntivirusScan',
      status: 'proposed',
      target: { deviceId: machine, deviceName: 'fin-wks-0142.corp.contoso.com' },
      reason: 'look for other payloads',
    });
    await ingest(body);
    await vi.waitFor(() => expect(slack.posts).toHaveLength(1), { timeout: 5_000, interval: 25 });
    await vi.waitFor(async () => expect((await store.getCardRefs('48213')).slack).toBeDefined(), {
      timeout: 5_000,
      interval: 25,
    });

    const scanButtons = buttons(slack.posts[0]?.blocks ?? []).filter((b) =>
      b.action_id.startsWith('approve:act-7'),
    ) as { action_id: string; value: string; text: { text: string } }[];
    expect(scanButtons.map((b) => [b.action_id, b.text.text, JSON.parse(b.value)])).toEqual([
      [
        'approve:act-7:Quick',
        'Approve quick scan',
        { incidentId: '48213', actionId: 'act-7', scanType: 'Quick' },
      ],
      [
        'approve:act-7:Full',
        'Approve full scan',
        { incidentId: '48213', actionId: 'act-7', scanType: 'Full' },
      ],
    ]);

    const forged = await clickButton(bot.url, EXPERT, {
      action_id: 'approve:act-7:Full',
      value: JSON.stringify({ incidentId: '48213', actionId: 'act-7', scanType: 'Boot' }),
    });
    expect(forged.status).toBe(200);
    await vi.waitFor(() => expect(responses).toHaveLength(1), { timeout: 5_000, interval: 25 });
    expect(JSON.stringify(responses[0]?.body)).toContain('scan type is Quick or Full');
    expect(await state('act-7')).toBe('proposed');
    expect(
      (await store.listAudit('48213')).map((e) => `${e.actor} ${e.event} ${e.outcome} ${e.detail}`),
    ).toContainEqual(
      expect.stringMatching(/^slack:U0EXPERT1 approve refused invalid_choice: not approved: scanType: /),
    );

    const full = scanButtons[1] as { action_id: string; value: string };
    expect((await clickButton(bot.url, EXPERT, full)).status).toBe(200);
    await vi.waitFor(async () => expect(await state('act-7')).toBe('succeeded'), {
      timeout: 10_000,
      interval: 50,
    });
    expect(sent).toEqual([
      {
        Comment: `MDR: full antivirus scan per incident 48213, action act-7 (approved by slack:${EXPERT})`,
        ScanType: 'Full',
      },
    ]);
    expect(await store.getAction('48213', 'act-7')).toMatchObject({
      scanType: 'Full',
      decidedBy: `slack:${EXPERT}`,
    });
    await vi.waitFor(
      () => {
        const last = JSON.stringify(slack.updates.at(-1)?.blocks);
        expect(last).toContain('Full antivirus scan on fin-wks-0142.corp.contoso.com');
        expect(last).toContain(`Scanned by @${EXPERT}`);
      },
      { timeout: 5_000, interval: 50 },
    );
  });

  it("refuses a customer's Approve to the customer alone, executes nothing and audits the refusal", async () => {
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    await start();
    await ingestAndWaitForCard();

    const click = await clickButton(bot.url, CUSTOMER, approve('act-1'));
    expect(click.status).toBe(200);
    await vi.waitFor(() => expect(responses).toHaveLength(1), { timeout: 5_000, interval: 25 });
    expect(responses[0]?.body).toMatchObject({
      response_type: 'ephemeral',
      replace_original: false,
      text: expect.stringContaining('only the MDR experts'),
    });
    expect(executor.records).toEqual([]);
    expect(await state('act-1')).toBe('proposed');
    expect(await store.listAudit('48213')).toContainEqual(
      expect.objectContaining({
        actor: `slack:${CUSTOMER}`,
        platform: 'slack',
        event: 'approve',
        outcome: 'refused',
        actionId: 'act-1',
      }),
    );
  });

  it('answers 401 to a forged, a missing and a stale signature, and runs nothing', async () => {
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    await start();
    await ingestAndWaitForCard();
    const raw = formBody({ payload: JSON.stringify(blockActionsPayload(EXPERT, approve('act-1'))) });

    const forged = await postSlack(
      bot.url,
      raw,
      slackSignatureHeaders(raw, { secret: 'not-the-secret-0123' }),
    );
    const missing = await postSlack(bot.url, raw, {});
    const stale = await postSlack(
      bot.url,
      raw,
      slackSignatureHeaders(raw, { timestamp: Math.floor(Date.now() / 1000) - 6 * 60 }),
    );
    const tampered = await postSlack(bot.url, raw.replace('act-1', 'act-4'), slackSignatureHeaders(raw));

    // A 401 is answered by the signature check, before any listener runs: nothing can follow it.
    expect([forged.status, missing.status, stale.status, tampered.status]).toEqual([401, 401, 401, 401]);
    expect(executor.records).toEqual([]);
    expect(await state('act-1')).toBe('proposed');
    expect(responses).toEqual([]);
    expect(await store.listAudit('48213')).not.toContainEqual(
      expect.objectContaining({ actor: `slack:${EXPERT}` }),
    );
  });

  it('executes once when two experts click the same Approve 30 times at once', async () => {
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    await start();
    await ingestAndWaitForCard();

    const clicks = await Promise.all(
      Array.from({ length: 30 }, (_, i) => clickButton(bot.url, i % 2 ? EXPERT : EXPERT2, approve('act-6'))),
    );
    expect(clicks.map((c) => c.status)).toEqual(Array(30).fill(200));
    await vi.waitFor(async () => expect(await state('act-6')).toBe('succeeded'), {
      timeout: 5_000,
      interval: 25,
    });
    // Every click was decided before its ack; the one winner's execution has ended (succeeded above).
    await vi.waitFor(() => expect(responses).toHaveLength(29), { timeout: 5_000, interval: 25 });
    const audit = await store.listAudit('48213');
    expect(audit.filter((e) => e.event === 'approve' && e.outcome === 'ok')).toHaveLength(1);
    expect(executor.records.filter((r) => r.actionId === 'act-6')).toHaveLength(1);
    expect(executor.records).toHaveLength(1);
    expect(responses.every((r) => /this action is already/.test(r.body.text))).toBe(true);
  });

  it('acts only on the action the store names: an edited value runs nothing on the excluded asset, a broken one nothing at all', async () => {
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    await start();
    await ingestAndWaitForCard();

    const edited = await clickButton(bot.url, EXPERT, {
      action_id: 'approve:act-1',
      value: buttonValue('48213', 'act-5'),
    });
    const broken = await clickButton(bot.url, EXPERT, {
      action_id: 'approve:act-1',
      value: '{"incidentId":',
    });
    const extra = await clickButton(bot.url, EXPERT, {
      action_id: 'approve:act-1',
      value: JSON.stringify({ incidentId: '48213', actionId: 'act-1', role: 'expert' }),
    });

    expect([edited.status, broken.status, extra.status]).toEqual([200, 200, 200]);
    await vi.waitFor(() => expect(responses).toHaveLength(3), { timeout: 5_000, interval: 25 });
    const texts = responses.map((r) => r.body.text as string);
    expect(texts).toContainEqual(
      expect.stringContaining('fin-app-07.corp.contoso.com is excluded by device group Finance-Servers'),
    );
    expect(texts.filter((t) => t.includes('That button is not valid'))).toHaveLength(2);
    expect(responses.every((r) => r.body.response_type === 'ephemeral')).toBe(true);
    const refusals = (await store.listAudit()).filter((e) => e.outcome === 'refused');
    expect(refusals).toHaveLength(2);
    expect(
      refusals.every((e) => e.actor === `slack:${EXPERT}` && e.detail.includes('invalid button value')),
    ).toBe(true);
    // An approval queues its execution before the click is answered: with the answers in, no execution
    // job waits or runs for either action, and none ran.
    for (const actionId of ['act-1', 'act-5']) {
      const id = jobIdOf({ kind: 'execute', incidentId: '48213', actionId });
      expect(await bot.runtime.queue.has(EXECUTE_JOB, id)).toBe(false);
    }
    expect(executor.records).toEqual([]);
    expect(await state('act-5')).toBe('customerPending');
    expect(await state('act-1')).toBe('proposed');
  });

  it('lets an admin exclude a device after the card was posted (then Approve on it is refused and it is a customer task), and refuses a customer', async () => {
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    await start();
    await ingestAndWaitForCard();

    const denied = await slashCommand(bot.url, CUSTOMER, 'exclude device ws-999.corp.contoso.com');
    expect(denied.status).toBe(200);
    expect(denied.body).toMatchObject({
      response_type: 'ephemeral',
      text: expect.stringContaining('only the admins named in the policy may change exclusions'),
    });

    const excluded = await slashCommand(bot.url, ADMIN, 'exclude device fin-wks-0142.corp.contoso.com');
    expect(excluded.status).toBe(200);
    expect(excluded.body).toMatchObject({
      response_type: 'in_channel',
      text: expect.stringContaining('Excluded: device name fin-wks-0142.corp.contoso.com.'),
    });
    const listed = await slashCommand(bot.url, EXPERT, 'exclusions');
    expect(listed.body.response_type).toBe('ephemeral');
    expect(listed.body.text).toContain('device fin-wks-0142.corp.contoso.com');
    expect(listed.body.text).not.toContain('ws-999');
    const hidden = await slashCommand(bot.url, CUSTOMER, 'exclusions');
    expect(hidden.body).toMatchObject({
      response_type: 'ephemeral',
      text: expect.stringContaining('only the MDR experts and the admins named in the policy'),
    });
    expect(hidden.body.text).not.toContain('fin-wks-0142');

    const click = await clickButton(bot.url, EXPERT, approve('act-1'));
    expect(click.status).toBe(200);
    await vi.waitFor(() => expect(responses).toHaveLength(1), { timeout: 5_000, interval: 25 });
    expect(responses[0]?.body).toMatchObject({
      response_type: 'ephemeral',
      text: expect.stringContaining(
        'fin-wks-0142.corp.contoso.com is excluded by device name fin-wks-0142.corp.contoso.com: this is now a task for your team',
      ),
    });
    expect(await state('act-1')).toBe('customerPending');
    const pending = await slashCommand(bot.url, CUSTOMER, 'pending');
    expect(pending.body.response_type).toBe('ephemeral');
    expect(buttons(pending.body.blocks).map((b) => b.action_id)).toEqual(
      expect.arrayContaining(['markDone:act-1', 'markDone:act-5']),
    );
    await vi.waitFor(
      () => {
        const ids = buttons(slack.updates.at(-1)?.blocks ?? []).map((b) => b.action_id);
        expect(ids).toContain('markDone:act-1');
        expect(ids).not.toContain('approve:act-1');
      },
      { timeout: 5_000, interval: 50 },
    );
    expect(executor.records).toEqual([]);
    expect(slack.posts).toHaveLength(1);
  });

  it('marks a customer task done from the card: the card updates and /mdr pending no longer lists it', async () => {
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    await start();
    await ingestAndWaitForCard();
    const before = await slashCommand(bot.url, CUSTOMER, 'pending');
    expect(before.body).toMatchObject({ response_type: 'ephemeral' });
    expect(buttons(before.body.blocks)).toContainEqual(
      expect.objectContaining({ action_id: 'markDone:act-5', value: buttonValue('48213', 'act-5') }),
    );

    const click = await clickButton(bot.url, CUSTOMER, markDone('act-5'));
    expect(click.status).toBe(200);
    await vi.waitFor(async () => expect(await state('act-5')).toBe('doneByCustomer'), {
      timeout: 5_000,
      interval: 25,
    });
    await vi.waitFor(
      () => {
        const last = slack.updates.at(-1);
        expect(last?.channel).toBe(CHANNEL);
        expect(buttons(last?.blocks ?? []).map((b) => b.action_id)).not.toContain('markDone:act-5');
        expect(JSON.stringify(last?.blocks)).toContain(`Done by @${CUSTOMER}`);
      },
      { timeout: 5_000, interval: 50 },
    );
    const after = await slashCommand(bot.url, CUSTOMER, 'pending');
    expect(after.body.text).toBe('No pending customer tasks.');
    expect(buttons(after.body.blocks)).toEqual([]);
    expect(responses).toEqual([]);

    const twice = await slashCommand(bot.url, CUSTOMER, 'done 48213:act-5');
    expect(twice.body).toMatchObject({
      response_type: 'ephemeral',
      text: expect.stringContaining('Not done'),
    });
  });

  it('runs a task from Run it myself for an admin once, after a confirm dialog; an expert or a plain customer is refused alone', async () => {
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    await start();
    const card = await ingestAndWaitForCard();
    const run = buttons(card.blocks ?? []).find((b) => b.action_id === 'runMyself:act-5') as any;
    expect(run?.confirm?.confirm?.text).toBe('Run it');
    const runMyself = { action_id: 'runMyself:act-5', value: buttonValue('48213', 'act-5') };

    await clickButton(bot.url, EXPERT, runMyself);
    await clickButton(bot.url, CUSTOMER, runMyself);
    await vi.waitFor(() => expect(responses).toHaveLength(2), { timeout: 5_000, interval: 25 });
    expect(responses.map((r) => r.body.response_type)).toEqual(['ephemeral', 'ephemeral']);
    expect(responses.map((r) => r.body.text).join('\n')).toContain(
      "Run it myself is the customer's own decision",
    );
    expect(responses.map((r) => r.body.text).join('\n')).toContain('only the admins named in the policy');
    expect(await state('act-5')).toBe('customerPending');

    expect((await clickButton(bot.url, ADMIN, runMyself)).status).toBe(200);
    await vi.waitFor(async () => expect(await state('act-5')).toBe('succeeded'), {
      timeout: 5_000,
      interval: 25,
    });
    expect(executor.records.map((r) => r.actionId)).toEqual(['act-5']);
    expect(await store.getAction('48213', 'act-5')).toMatchObject({
      decidedBy: `slack:${ADMIN}`,
      decidedAs: 'customer',
    });
  });

  it('skips a task with /mdr skip and a reason: out of /mdr pending, and the card says why', async () => {
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    await start();
    await ingestAndWaitForCard();

    const bare = await slashCommand(bot.url, CUSTOMER, 'skip 48213:act-5');
    expect(bare.body.text).toMatch(/^Usage: skip &lt;taskId&gt; &lt;reason&gt; \(a reason is required/);
    const skipped = await slashCommand(bot.url, CUSTOMER, 'skip 48213:act-5 server rebuilt from image');
    expect(skipped.body).toMatchObject({
      response_type: 'in_channel',
      text: 'Task 48213:act-5 skipped: server rebuilt from image',
    });
    expect(await state('act-5')).toBe('skippedByCustomer');
    await vi.waitFor(
      () =>
        expect(JSON.stringify(slack.updates.at(-1)?.blocks)).toContain('Reason: server rebuilt from image'),
      { timeout: 5_000, interval: 50 },
    );
    const after = await slashCommand(bot.url, CUSTOMER, 'pending');
    expect(after.body.text).toBe('No pending customer tasks.');
  });

  it('skips a task from its Skip button: a modal asks why, a blank reason stays there, refusals stay with the submitter, and the card says why', async () => {
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    const opened: { trigger_id: string; view: any; authorization: string | undefined }[] = [];
    nock(SLACK_API_ORIGIN)
      .persist()
      .post('/api/views.open')
      .reply(function (_uri, body) {
        const { args, authorization } = readWebApiCall(this.req.headers, body);
        opened.push({ trigger_id: args.trigger_id ?? '', view: args.view ?? {}, authorization });
        return [200, { ok: true, view: { id: `V0SKIP${opened.length}`, ...opened.at(-1)?.view } }];
      });
    await start();
    const card = await ingestAndWaitForCard();
    const skip = buttons(card.blocks).find((b) => b.action_id === 'skip:act-5') as any;
    expect(skip).toMatchObject({ value: buttonValue('48213', 'act-5'), text: { text: 'Skip' } });
    expect(JSON.stringify(card.blocks)).not.toContain('/mdr skip');

    const payload = blockActionsPayload(CUSTOMER, { action_id: 'skip:act-5', value: skip.value });
    const click = await postSlack(bot.url, formBody({ payload: JSON.stringify(payload) }));
    expect(click.status).toBe(200);
    await vi.waitFor(() => expect(opened).toHaveLength(1), { timeout: 5_000, interval: 25 });
    const [{ trigger_id, view, authorization }] = opened as [(typeof opened)[number]];
    expect(trigger_id).toBe(payload.trigger_id);
    expect(authorization).toBe(`Bearer ${SLACK_BOT_TOKEN}`);
    expect(view).toMatchObject({ type: 'modal', callback_id: 'skip_task' });
    expect(JSON.parse(view.private_metadata)).toEqual({ incidentId: '48213', actionId: 'act-5' });
    const input = view.blocks.find((b: any) => b.type === 'input');
    expect(input).toMatchObject({
      block_id: 'reason',
      element: { type: 'plain_text_input', action_id: 'reason', max_length: 500 },
    });
    expect(input.optional).not.toBe(true);
    expect(await state('act-5')).toBe('customerPending');

    const blank = await submitView(bot.url, CUSTOMER, view, '   ');
    expect(blank).toMatchObject({
      status: 200,
      body: {
        response_action: 'errors',
        errors: { reason: 'say why the task is skipped: skip <taskId> <reason>' },
      },
    });
    expect(await state('act-5')).toBe('customerPending');
    // Refused by the core, and audited like every refusal.
    expect((await store.listAudit('48213')).at(-1)).toMatchObject({
      event: 'skip',
      outcome: 'refused',
      detail: expect.stringContaining('say why the task is skipped'),
    });

    const expert = await submitView(bot.url, EXPERT, view, 'not needed');
    expect(expert.body.response_action).toBe('update');
    expect(JSON.stringify(expert.body.view)).toContain("customer tasks are skipped by the customer's team");
    const forged = await submitView(
      bot.url,
      CUSTOMER,
      {
        ...view,
        private_metadata: JSON.stringify({ incidentId: '48213', actionId: 'act-1' }),
      },
      'not needed',
    );
    expect(JSON.stringify(forged.body.view)).toContain('this is not a pending task');
    expect(await state('act-1')).toBe('proposed');
    const foreign = await submitView(bot.url, CUSTOMER, view, 'not needed', {
      team: { id: 'T0OTHER', domain: 'other' },
      user: { id: CUSTOMER, name: 'customer', team_id: 'T0OTHER' },
    });
    expect(foreign.body.response_action).toBe('update');
    expect(JSON.stringify(foreign.body.view)).toContain('only in the Slack workspace it was installed for');
    expect(await state('act-5')).toBe('customerPending');
    const refused = [...(await store.listAudit('48213')), ...(await store.listAudit())].filter(
      (e) => e.event === 'skip' && e.outcome === 'refused',
    );
    expect(refused.map((e) => e.actor)).toEqual(
      expect.arrayContaining([`slack:${EXPERT}`, `slack:${CUSTOMER}`, expect.stringContaining('T0OTHER')]),
    );

    const done = await submitView(bot.url, CUSTOMER, view, '  server rebuilt from a clean image ');
    expect(done).toMatchObject({ status: 200, body: { response_action: 'clear' } });
    expect(await store.getAction('48213', 'act-5')).toMatchObject({
      state: 'skippedByCustomer',
      skippedBy: `slack:${CUSTOMER}`,
      skipReason: 'server rebuilt from a clean image',
    });
    await vi.waitFor(
      () => {
        const last = slack.updates.at(-1);
        expect(JSON.stringify(last?.blocks)).toContain('Reason: server rebuilt from a clean image');
        expect(buttons(last?.blocks ?? []).map((b) => b.action_id)).not.toContain('skip:act-5');
      },
      { timeout: 5_000, interval: 50 },
    );
    const again = await submitView(bot.url, CUSTOMER, view, 'twice');
    expect(JSON.stringify(again.body.view)).toContain('this is not a pending task');
    expect(responses).toEqual([]);
  });

  it("answers /mdr done in the channel, and refreshes the clicker's own /mdr pending list after Mark done there", async () => {
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    await start();
    await ingestAndWaitForCard();
    await slashCommand(bot.url, ADMIN, 'exclude device fin-wks-0142.corp.contoso.com');

    const done = await slashCommand(bot.url, CUSTOMER, 'done 48213:act-5');
    expect(done.body).toMatchObject({ response_type: 'in_channel', text: 'Task 48213:act-5 marked done.' });
    const fromList = await clickButton(bot.url, CUSTOMER, markDone('act-1'), {
      container: {
        type: 'message',
        message_ts: '1741942001.000200',
        channel_id: CHANNEL,
        is_ephemeral: true,
      },
    });
    expect(fromList.status).toBe(200);
    await vi.waitFor(() => expect(responses).toHaveLength(1), { timeout: 5_000, interval: 25 });
    expect(responses[0]?.body).toMatchObject({
      response_type: 'ephemeral',
      replace_original: true,
      text: 'Customer tasks (1)',
    });
    expect(buttons(responses[0]?.body.blocks ?? []).map((b) => b.action_id)).toEqual(['markDone:act-4']);
    expect(await state('act-1')).toBe('doneByCustomer');
    const help = await slashCommand(bot.url, CUSTOMER, 'help');
    expect(help.body).toMatchObject({
      response_type: 'ephemeral',
      text: expect.stringContaining('MDR bot commands'),
    });
  });

  it('acknowledges a slow /mdr at once and answers it on the response URL', async () => {
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    const evidence = new StaticAssetDirectory();
    // Once `hold` is set, device lookups wait until the test lets them go.
    let hold: Promise<void> | undefined;
    let letGo: () => void = () => {};
    const directory: AssetDirectory = {
      deviceFacts: async (device, incident) => {
        await hold;
        return evidence.deviceFacts(device, incident);
      },
      resolveUser: (user, incident) => evidence.resolveUser(user, incident),
      memberOfGroups: (user, groups) => evidence.memberOfGroups(user, groups),
    };
    await start({ directory });
    await ingestAndWaitForCard();
    hold = new Promise<void>((resolve) => {
      letGo = resolve;
    });

    // Answered while the lookups it needs are still held: the acknowledgement does not wait for them.
    const excluded = await slashCommand(bot.url, ADMIN, 'exclude device-group Finance-Workstations');
    expect(excluded.body).toMatchObject({ response_type: 'ephemeral', text: 'Working on it…' });
    expect(responses).toEqual([]);
    letGo();
    await vi.waitFor(() => expect(responses).toHaveLength(1), { timeout: 10_000, interval: 50 });
    expect(responses[0]?.path).toMatch(/^\/commands\//);
    expect(responses[0]?.body).toMatchObject({
      response_type: 'in_channel',
      text: expect.stringContaining('Excluded: device group Finance-Workstations.'),
    });
  });

  it("posts an overdue-task reminder in the card's thread", async () => {
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    await start();
    await ingestAndWaitForCard();
    const [task] = await store.listTasks('pending');
    expect(task?.id).toBe('48213:act-5');

    await bot.runtime.notifier.taskOverdue(task!);
    await vi.waitFor(() => expect(slack.posts).toHaveLength(2), { timeout: 5_000, interval: 25 });
    expect(slack.posts[1]).toMatchObject({
      channel: CHANNEL,
      thread_ts: '1741942000.000001',
      text: expect.stringContaining('Reminder: customer task 48213:act-5 is still pending'),
    });
  });

  it('warns once and posts nothing when the policy names no Slack channel', async () => {
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    store = new RedisStore({ url: redis.url }, `${redis.prefix}${Math.random().toString(36).slice(2)}:`);
    bot = await startBot({
      env: {
        SLACK_BOT_TOKEN,
        SLACK_SIGNING_SECRET,
        SLACK_API_URL,
        POLICY_FILE: policy.path,
      },
      config: (c) => ({ ...c, policy: { ...c.policy, channels: {} } }),
      parts: { store, storeKind: 'redis', executor: new DryRunExecutor() },
      mounts: (rt) => ({ slack: createSlack(rt).handler }),
    });
    const warn = vi.spyOn(bot.runtime.logger, 'warn');
    await ingest();
    await ingest(sampleIngestBody({ ...shippedSample(), incident: { id: '48214' } }));
    // Both cards' deliveries have run (nothing is left queued) before "once" and "nothing" are checked.
    await drained(bot);
    const about = warn.mock.calls.filter((call) => String(call[0]).includes('channels.slack'));
    expect(about).toHaveLength(1);
    expect(slack.posts).toEqual([]);
  });

  it('delivers the first card exactly once when chat.postMessage first answers 429 Retry-After: 1', async () => {
    let limitedAt = 0;
    nock(SLACK_API_ORIGIN)
      .post('/api/chat.postMessage')
      .reply(() => {
        limitedAt = Date.now();
        return [429, { ok: false, error: 'ratelimited' }, { 'Retry-After': '1' }];
      });
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    await start();
    const paused = vi.spyOn(store, 'pauseChannel');

    await ingest();
    await vi.waitFor(() => expect(slack.posts).toHaveLength(1), { timeout: 8_000, interval: 25 });
    expect(limitedAt).toBeGreaterThan(0);
    // Retry-After: 1 paused the channel for that second, for every replica (through the store)...
    expect(paused).toHaveBeenCalledTimes(1);
    const [pausedChannel, until] = paused.mock.calls[0] ?? [];
    expect(pausedChannel).toBe(slackChannelPause(CHANNEL));
    expect(until).toBeGreaterThanOrEqual(limitedAt + 1_000);
    // ...and once nothing is left queued, the card was posted once and never updated.
    await drained(bot);
    expect(slack.posts).toHaveLength(1);
    expect(slack.updates).toEqual([]);
    expect(await store.getCardRefs('48213')).toEqual({
      slack: { channel: CHANNEL, ts: '1741942000.000001' },
    });
  });

  it('turns ten changes to one incident made while its card is being updated into one more chat.update with the latest state', async () => {
    // The first update is held by "Slack" until the ten changes are in.
    let release: () => void = () => {};
    let inFlight: () => void = () => {};
    const firstUpdateArrived = new Promise<void>((resolve) => {
      inFlight = resolve;
    });
    const held: SentMessage[] = [];
    nock(SLACK_API_ORIGIN)
      .post('/api/chat.update')
      .reply(async function (_uri, body) {
        const message = sentMessage(readWebApiCall(this.req.headers, body));
        held.push(message);
        inFlight();
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        return [200, { ok: true, channel: CHANNEL, ts: message.ts }];
      });
    slack = fakeSlackApi();
    responses = fakeResponseUrls();
    await start();
    await ingestAndWaitForCard();
    await drained(bot);

    const body = sampleIngestBody(shippedSample());
    const scan = (i: number) => ({
      id: `act-${i}`,
      type: 'runAntivirusScan',
      status: 'proposed' as const,
      target: { deviceId: SAMPLE.workstationId, deviceName: SAMPLE.workstation },
      reason: `scan ${i}`,
    });
    body.managedResponse.actions.push(scan(7));
    await ingest(body);
    await firstUpdateArrived;
    for (let i = 8; i <= 16; i += 1) {
      body.managedResponse.actions.push(scan(i));
      await ingest(body);
    }
    release();
    await drained(bot);

    expect(held).toHaveLength(1);
    expect(slack.updates).toHaveLength(1);
    expect(JSON.stringify(slack.updates[0]?.blocks)).toContain('Awaiting expert approval (14)');
    expect(slack.posts).toHaveLength(1);
  });

  const rejectedCount = (message: SentMessage | undefined) =>
    (JSON.stringify(message?.blocks ?? []).match(/Rejected by/g) ?? []).length;
  const reject = (actionId: string) =>
    rejectAction(
      bot.runtime.deps,
      { incidentId: '48213', actionId },
      { id: `slack:${EXPERT}`, platform: 'slack' },
    );

  /** The in-process queue of local mode, or BullMQ on the test Redis as replicas run it. */
  const queues = {
    local: () => ({}),
    bullmq: () => ({
      queue: new BullMqQueue({
        url: redis.url,
        keyPrefix: `${redis.prefix}${Math.random().toString(36).slice(2)}:`,
        lanes: JOB_LANES,
        logger: createLogger('silent'),
      }),
    }),
  };

  it.each(['local', 'bullmq'] as const)(
    'posts a new incident at once and turns a burst of changes into one chat.update with the latest state (%s queue)',
    async (kind) => {
      slack = fakeSlackApi();
      responses = fakeResponseUrls();
      await start(queues[kind]());
      await ingestAndWaitForCard();

      const decisions = await Promise.all(['act-1', 'act-3', 'act-4', 'act-6'].map(reject));
      expect(decisions.every((d) => d.ok)).toBe(true);
      await vi.waitFor(() => expect(rejectedCount(slack.updates.at(-1))).toBe(4), {
        timeout: 5_000,
        interval: 25,
      });
      // A later change of its own: once its update is out, nothing of the burst can still be queued before it.
      await bot.runtime.notifier.incidentChanged('48213');
      await vi.waitFor(() => expect(slack.updates).toHaveLength(2), { timeout: 5_000, interval: 25 });
      expect(rejectedCount(slack.updates[0])).toBe(4);
      expect(slack.updates.map((u) => u.ts)).toEqual(['1741942000.000001', '1741942000.000001']);
      expect(slack.posts).toHaveLength(1);
    },
  );

  it.each(['local', 'bullmq'] as const)(
    'delivers a change made while a delivery of the same card is running, in one more update after it (%s queue)',
    async (kind) => {
      let release: () => void = () => {};
      let inFlight: () => void = () => {};
      const firstUpdateArrived = new Promise<void>((resolve) => {
        inFlight = resolve;
      });
      const updates: SentMessage[] = [];
      nock(SLACK_API_ORIGIN)
        .post('/api/chat.update')
        .reply(async function (_uri, body) {
          const message = sentMessage(readWebApiCall(this.req.headers, body));
          updates.push(message);
          inFlight();
          await new Promise<void>((resolve) => {
            release = resolve;
          });
          return [200, { ok: true, channel: CHANNEL, ts: message.ts }];
        });
      slack = fakeSlackApi();
      responses = fakeResponseUrls();
      await start(queues[kind]());
      await ingestAndWaitForCard();

      expect((await reject('act-1')).ok).toBe(true);
      await firstUpdateArrived;
      // The first update is being sent (held by Slack): this change comes after its state was read.
      expect((await reject('act-3')).ok).toBe(true);
      release();

      await vi.waitFor(() => expect(rejectedCount(slack.updates.at(-1))).toBe(2), {
        timeout: 5_000,
        interval: 25,
      });
      expect(updates).toHaveLength(1);
      expect(rejectedCount(updates[0])).toBe(1);
      expect(slack.updates).toHaveLength(1);
      expect(slack.posts).toHaveLength(1);
    },
  );
});
