import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppManifestUtils } from '@microsoft/app-manifest';
import JSZip from 'jszip';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DefenderExecutor } from '../../adapters/defender-executor.js';
import { DryRunExecutor } from '../../adapters/dry-run-executor.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { createHttpApp } from '../../bot/server.js';
import { createTeams, isLoopbackAddress } from '../../bot/teams/index.js';
import { teamsConversationPause } from '../../bot/teams/publisher.js';
import type { ActionRecord } from '../../core/model.js';
import type { SubmitContext } from '../../core/ports.js';
import { fillManifest, packageTeamsApp } from '../../scripts/package-teams.js';
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import {
  BOT,
  botAddedToTeam,
  botRemovedFromTeam,
  CHANNEL_ID,
  CUSTOMER_USER,
  cardAction,
  channelToken,
  EXPERT_USER,
  fakeBotFramework,
  installationUpdate,
  mentionMessage,
  TEAMS_AUTH_ENV,
  TEAMS_SERVICE_URL,
  TENANT_ID,
} from '../support/teams.js';
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

const CARD = 'application/vnd.microsoft.card.adaptive';
const INCIDENT = '48213';
/** A customer admin (named in the policy's `admins`). */
const ADMIN_USER = {
  id: '29:1adminMriAbCdEfGhIjKlMnOpQrStUvWxYz0123456789',
  name: 'Avery Admin',
  aadObjectId: '6f2c0a4e-3333-4aad-9d7e-000000000a01',
};
/** Delivery is coalesced (1 s window) and may back off: poll for up to 10 s. */
const WAIT = { timeout: 10_000, interval: 50 };

/** Counts executions (the outward port), delegating to the dry-run executor; `failing` runs fail first. */
class CountingExecutor extends DryRunExecutor {
  calls: string[] = [];
  failing = 0;
  override async submit(action: ActionRecord, context: SubmitContext) {
    this.calls.push(`${action.incidentId}:${action.id}`);
    if (this.failing > 0) {
      this.failing -= 1;
      return { kind: 'finished' as const, outcome: { ok: false as const, reason: 'the device is offline' } };
    }
    return super.submit(action, context);
  }
}

interface ConnectorCall {
  method: 'POST' | 'PUT';
  path: string;
  body: any;
  at: number;
}

/** The Bot Connector at the activities' serviceUrl, faked: records calls and answers from a script. */
function fakeConnector() {
  const calls: ConnectorCall[] = [];
  const script: { status: number; body: unknown; headers?: Record<string, string> }[] = [];
  let next = 1;
  const answer = (method: 'POST' | 'PUT') =>
    function (this: unknown, path: string, body: any): [number, unknown, Record<string, string>?] {
      calls.push({ method, path, body, at: Date.now() });
      const planned = script.shift();
      if (planned) return [planned.status, planned.body, planned.headers ?? {}];
      return [200, { id: method === 'PUT' ? body?.id : `card-${next++}` }];
    };
  const origin = new URL(TEAMS_SERVICE_URL).origin;
  nock(origin)
    .persist()
    .post(/\/amer\/v3\/conversations\//)
    .reply(answer('POST'));
  nock(origin)
    .persist()
    .put(/\/amer\/v3\/conversations\//)
    .reply(answer('PUT'));
  return {
    calls,
    /** Answer the next calls with these statuses, in order. */
    fail(...responses: { status: number; body: unknown; headers?: Record<string, string> }[]) {
      script.push(...responses);
    },
    posts: () => calls.filter((c) => c.method === 'POST'),
    puts: () => calls.filter((c) => c.method === 'PUT'),
    /** Successful card posts to the channel (not replies to a message). */
    cardPosts: () =>
      calls.filter(
        (c) =>
          c.method === 'POST' &&
          c.path.includes(encodeURIComponent(CHANNEL_ID)) &&
          !c.path.includes('messageid') &&
          c.body?.attachments?.[0]?.contentType === CARD,
      ),
  };
}

/** Every `Action.Execute` in a card, anywhere in it. */
function executeActions(card: unknown): { verb: string; data: Record<string, unknown> }[] {
  const found: { verb: string; data: Record<string, unknown> }[] = [];
  const walk = (node: unknown) => {
    if (Array.isArray(node)) for (const item of node) walk(item);
    else if (node && typeof node === 'object') {
      const o = node as Record<string, unknown>;
      if (o.type === 'Action.Execute' && o.verb !== 'refresh')
        found.push({ verb: o.verb as string, data: o.data as Record<string, unknown> });
      for (const [key, value] of Object.entries(o)) if (key !== 'refresh') walk(value);
    }
  };
  walk(card);
  return found;
}

const buttons = (card: unknown, verb: string) =>
  executeActions(card)
    .filter((a) => a.verb === verb)
    .map((a) => a.data.actionId)
    .sort();

const cardText = (card: unknown) => JSON.stringify(card);

let redis: TestRedis;
beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
});
afterAll(async () => {
  await redis.cleanup();
});

beforeEach(() => {
  nock.cleanAll();
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
});
afterEach(() => {
  nock.cleanAll();
  nock.enableNetConnect();
});

describe('Teams over the real HTTP endpoint (no app id: loopback only)', () => {
  let bot: BotServer;
  let store: RedisStore;
  let executor: CountingExecutor;
  let connector: ReturnType<typeof fakeConnector>;

  const start = async (
    env: Record<string, string> = {},
    options: { callTimeoutMs?: number } = {},
    parts: { executor?: DefenderExecutor } = {},
  ) => {
    store = new RedisStore({ url: redis.url }, `${redis.prefix}${randomUUID().slice(0, 8)}:`);
    executor = new CountingExecutor();
    connector = fakeConnector();
    bot = await startBot({
      env,
      parts: { store, storeKind: 'redis', executor, ...parts },
      config: (c) => ({
        ...c,
        policy: {
          ...c.policy,
          roles: {
            experts: [`teams:${EXPERT_USER.aadObjectId}`],
            admins: [`teams:${ADMIN_USER.aadObjectId}`],
          },
          exclusions: { devices: [{ group: 'Finance-Servers' }], users: [] },
        },
      }),
      mounts: (rt) => ({ teams: createTeams(rt, env, options).handler }),
    });
  };
  afterEach(async () => {
    await bot?.close();
  });

  const activity = (body: unknown) => send(`${bot.url}/api/messages`, { body });

  /** Bot added to the team, sample incident ingested, its card posted: returns the card's activity id. */
  const postedIncident = async () => {
    expect((await activity(botAddedToTeam())).status).toBe(200);
    const ingest = await send(`${bot.url}/api/incidents`, {
      token: INGEST_TOKEN,
      body: sampleIngestBody(shippedSample()),
    });
    expect(ingest.status).toBe(201);
    await vi.waitFor(
      async () => expect((await store.getCardRefs(INCIDENT)).teams?.[0]?.activityId).toBeTruthy(),
      WAIT,
    );
    return (await store.getCardRefs(INCIDENT)).teams![0]!.activityId;
  };

  it('stores the conversation when added to a team and posts one Adaptive Card 1.5 for a new incident', async () => {
    await start();
    await activity(botAddedToTeam());
    const conversations = await store.listConversations();
    expect(conversations).toHaveLength(1);
    expect(conversations[0]).toMatchObject({
      conversationId: CHANNEL_ID,
      reference: {
        serviceUrl: TEAMS_SERVICE_URL,
        channelId: 'msteams',
        bot: BOT,
        conversation: { id: CHANNEL_ID, conversationType: 'channel' },
      },
    });

    const activityId = await postedIncident();
    expect(connector.cardPosts()).toHaveLength(1);
    const [post] = connector.cardPosts();
    expect(post!.path).toMatch(
      new RegExp(`^/amer/v3/conversations/${encodeURIComponent(CHANNEL_ID)}/activities`),
    );
    expect(post!.body).toMatchObject({ type: 'message', conversation: { id: CHANNEL_ID }, from: BOT });
    const card = post!.body.attachments[0].content;
    expect(card).toMatchObject({ type: 'AdaptiveCard', version: '1.5' });
    expect(buttons(card, 'approve')).toEqual(['act-1', 'act-3', 'act-4', 'act-6']);
    expect(buttons(card, 'markDone')).toEqual(['act-5']);
    for (const action of executeActions(card))
      expect(Object.keys(action.data).sort()).toEqual(['actionId', 'incidentId']);
    expect(await store.getCardRefs(INCIDENT)).toEqual({
      teams: [{ conversationId: CHANNEL_ID, activityId }],
    });
  });

  it('keeps installs from installationUpdate and forgets them on uninstall or removal', async () => {
    await start();
    const chat = { id: '19:meeting_abc@thread.v2', conversationType: 'groupChat', isGroup: true };
    await activity(installationUpdate('add', { conversation: chat }));
    expect((await store.listConversations()).map((c) => c.conversationId)).toEqual([chat.id]);
    await activity(installationUpdate('remove', { conversation: chat }));
    expect(await store.listConversations()).toEqual([]);
    await activity(botAddedToTeam());
    await activity(botRemovedFromTeam());
    expect(await store.listConversations()).toEqual([]);
  });

  it("answers an expert's approval with the expert's card, runs it once and updates the shared card", async () => {
    await start();
    const activityId = await postedIncident();
    const res = await activity(
      cardAction('approve', { incidentId: INCIDENT, actionId: 'act-1' }, { replyToId: activityId }),
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      statusCode: 200,
      type: CARD,
      value: { type: 'AdaptiveCard', version: '1.5' },
    });
    expect(buttons(res.body.value, 'approve')).toEqual(['act-3', 'act-4', 'act-6']);
    expect(buttons(res.body.value, 'markDone')).toEqual([]);

    await vi.waitFor(
      async () => expect((await store.getAction(INCIDENT, 'act-1'))?.state).toBe('succeeded'),
      WAIT,
    );
    expect(executor.calls).toEqual([`${INCIDENT}:act-1`]);
    await vi.waitFor(() => {
      const put = connector.puts().at(-1);
      expect(put?.path).toBe(
        `/amer/v3/conversations/${encodeURIComponent(CHANNEL_ID)}/activities/${activityId}`,
      );
      expect(buttons(put?.body.attachments[0].content, 'approve')).toEqual(['act-3', 'act-4', 'act-6']);
    }, WAIT);
    expect(connector.cardPosts()).toHaveLength(1);
  });

  it("refuses a customer's approval on the customer's own card and runs nothing", async () => {
    await start();
    const activityId = await postedIncident();
    const res = await activity(
      cardAction(
        'approve',
        { incidentId: INCIDENT, actionId: 'act-1' },
        { from: CUSTOMER_USER, replyToId: activityId },
      ),
    );
    expect(res.status).toBe(200);
    expect(res.body.type).toBe(CARD);
    expect(cardText(res.body.value)).toContain(
      'only the MDR experts named in the policy may approve actions',
    );
    expect(buttons(res.body.value, 'approve')).toEqual([]);
    expect(buttons(res.body.value, 'markDone')).toEqual(['act-5']);
    expect((await store.getAction(INCIDENT, 'act-1'))?.state).toBe('proposed');
    const audit = await store.listAudit(INCIDENT);
    expect(audit.at(-1)).toMatchObject({
      actor: `teams:${CUSTOMER_USER.aadObjectId}`,
      platform: 'teams',
      outcome: 'refused',
    });
    expect(executor.calls).toEqual([]);
  });

  it('executes once when the same approval is clicked many times at once', async () => {
    await start();
    const activityId = await postedIncident();
    const clicks = await Promise.all(
      Array.from({ length: 6 }, () =>
        activity(
          cardAction('approve', { incidentId: INCIDENT, actionId: 'act-6' }, { replyToId: activityId }),
        ),
      ),
    );
    expect(clicks.map((c) => c.status)).toEqual(Array(6).fill(200));
    const refused = clicks.filter((c) => cardText(c.body.value).includes('already'));
    expect(refused).toHaveLength(5);
    await vi.waitFor(
      async () => expect((await store.getAction(INCIDENT, 'act-6'))?.state).toBe('succeeded'),
      WAIT,
    );
    expect(executor.calls).toEqual([`${INCIDENT}:act-6`]);
  });

  it('retries a failed action from the Retry button for an expert only, and runs it once more', async () => {
    await start();
    executor.failing = 1;
    const activityId = await postedIncident();
    await activity(
      cardAction('approve', { incidentId: INCIDENT, actionId: 'act-1' }, { replyToId: activityId }),
    );
    await vi.waitFor(
      async () => expect((await store.getAction(INCIDENT, 'act-1'))?.state).toBe('failed'),
      WAIT,
    );
    const expertView = await activity(
      cardAction('refresh', { incidentId: INCIDENT }, { replyToId: activityId }),
    );
    expect(buttons(expertView.body.value, 'retry')).toEqual(['act-1']);
    expect(buttons(expertView.body.value, 'handover')).toEqual(['act-1']);
    const customerView = await activity(
      cardAction('refresh', { incidentId: INCIDENT }, { from: CUSTOMER_USER, replyToId: activityId }),
    );
    expect(buttons(customerView.body.value, 'retry')).toEqual([]);

    const refused = await activity(
      cardAction(
        'retry',
        { incidentId: INCIDENT, actionId: 'act-1' },
        { from: CUSTOMER_USER, replyToId: activityId },
      ),
    );
    expect(refused.body).toMatchObject({ statusCode: 200, type: CARD });
    expect(cardText(refused.body.value)).toContain(
      'only the MDR experts named in the policy may retry actions',
    );
    expect((await store.getAction(INCIDENT, 'act-1'))?.state).toBe('failed');

    const retried = await activity(
      cardAction('retry', { incidentId: INCIDENT, actionId: 'act-1' }, { replyToId: activityId }),
    );
    expect(retried.body).toMatchObject({ statusCode: 200, type: CARD });
    await vi.waitFor(
      async () => expect((await store.getAction(INCIDENT, 'act-1'))?.state).toBe('succeeded'),
      WAIT,
    );
    expect(executor.calls).toEqual([`${INCIDENT}:act-1`, `${INCIDENT}:act-1`]);
    expect((await store.listAudit(INCIDENT)).filter((e) => e.event === 'retry')).toMatchObject([
      { actor: `teams:${CUSTOMER_USER.aadObjectId}`, outcome: 'refused' },
      { actor: `teams:${EXPERT_USER.aadObjectId}`, platform: 'teams', outcome: 'ok' },
    ]);
  });

  it('approves the antivirus scan chosen on the card: Full ends in a POST with ScanType Full, Quick by default, a forged scan type refused', async () => {
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
      { DEFENDER_FOLLOW_SECONDS: '1' },
      {},
      {
        executor: new DefenderExecutor({
          credential: testCredential(),
          defenderApiUrl: MDE_URL,
          graphApiUrl: GRAPH_URL,
          sleep: fakeTime().sleep,
        }),
      },
    );
    expect((await activity(botAddedToTeam())).status).toBe(200);
    const body = sampleIngestBody(shippedSample());
    for (const id of ['act-7', 'act-8'])
      body.managedResponse.actions.push({
        id,
        type: 'runAntivirusScan',
        status: 'proposed',
        target: { deviceId: machine, deviceName: 'fin-wks-0142.corp.contoso.com' },
      });
    expect((await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body })).status).toBe(201);
    await vi.waitFor(async () => expect(connector.cardPosts()).toHaveLength(1), WAIT);
    const card = connector.cardPosts()[0]!.body.attachments[0].content;
    const choiceSets = JSON.stringify(card).match(/"type":"Input\.ChoiceSet"/g) ?? [];
    expect(choiceSets).toHaveLength(2);
    expect(cardText(card)).toContain(
      '"id":"scanType:act-7","label":"Scan","style":"compact","value":"Quick","spacing":"Small","choices":[{"title":"Quick scan","value":"Quick"},{"title":"Full scan","value":"Full"}]',
    );
    const activityId = (await store.getCardRefs(INCIDENT)).teams![0]!.activityId;

    // Teams sends every input of the card with the click, keyed by the input's id.
    const click = (actionId: string, inputs: Record<string, unknown>) =>
      activity(
        cardAction('approve', { incidentId: INCIDENT, actionId, ...inputs }, { replyToId: activityId }),
      );
    const forged = await click('act-7', { 'scanType:act-7': 'Boot', 'scanType:act-8': 'Quick' });
    expect(forged.body).toMatchObject({
      statusCode: 400,
      value: { code: 'BadRequest', message: expect.stringContaining('(scan type is Quick or Full)') },
    });
    expect((await store.getAction(INCIDENT, 'act-7'))?.state).toBe('proposed');
    expect((await store.listAudit(INCIDENT)).at(-1)).toMatchObject({
      actor: `teams:${EXPERT_USER.aadObjectId}`,
      event: 'approve',
      outcome: 'refused',
      detail: expect.stringContaining('invalid_choice'),
    });

    expect(
      (await click('act-7', { 'scanType:act-7': 'Full', 'scanType:act-8': 'Quick' })).body,
    ).toMatchObject({
      statusCode: 200,
      type: CARD,
    });
    await vi.waitFor(
      async () => expect((await store.getAction(INCIDENT, 'act-7'))?.state).toBe('succeeded'),
      WAIT,
    );
    expect((await click('act-8', {})).body).toMatchObject({ statusCode: 200 });
    await vi.waitFor(
      async () => expect((await store.getAction(INCIDENT, 'act-8'))?.state).toBe('succeeded'),
      WAIT,
    );
    expect(sent.map((b) => b.ScanType)).toEqual(['Full', 'Quick']);
    expect(sent[0]?.Comment).toContain('MDR: full antivirus scan per incident 48213, action act-7 (');
    await vi.waitFor(() => {
      const shared = cardText(connector.puts().at(-1)?.body.attachments[0].content);
      expect(shared).toContain('Full antivirus scan on fin-wks-0142.corp.contoso.com');
      expect(shared).toContain('Quick antivirus scan on fin-wks-0142.corp.contoso.com');
      expect(shared).toContain(`Scanned by ${EXPERT_USER.name}`);
    }, WAIT);
  });

  it("shows who acted by name: the activity's from.name, else the member's name from the Bot Connector", async () => {
    await start();
    const activityId = await postedIncident();
    const origin = new URL(TEAMS_SERVICE_URL).origin;
    const member = nock(origin)
      .get(
        `/amer/v3/conversations/${encodeURIComponent(CHANNEL_ID)}/members/${encodeURIComponent(EXPERT_USER.id)}`,
      )
      .reply(200, {
        id: EXPERT_USER.id,
        name: 'Morgan Lee',
        objectId: EXPERT_USER.aadObjectId,
        givenName: 'Morgan',
        surname: 'Lee',
        email: 'morgan.lee@mdr.example',
        userPrincipalName: 'morgan.lee@mdr.example',
        tenantId: TENANT_ID,
        userRole: 'user',
      });
    const nameless = { id: EXPERT_USER.id, aadObjectId: EXPERT_USER.aadObjectId } as typeof EXPERT_USER;
    const approved = await activity(
      cardAction(
        'approve',
        { incidentId: INCIDENT, actionId: 'act-1' },
        { from: nameless, replyToId: activityId },
      ),
    );
    expect(approved.body).toMatchObject({ statusCode: 200, type: CARD });
    expect(member.isDone()).toBe(true);
    await vi.waitFor(
      async () => expect((await store.getAction(INCIDENT, 'act-1'))?.state).toBe('succeeded'),
      WAIT,
    );
    expect(await store.getAction(INCIDENT, 'act-1')).toMatchObject({
      decidedBy: `teams:${EXPERT_USER.aadObjectId}`,
      decidedByName: 'Morgan Lee',
    });
    await vi.waitFor(() => {
      const shared = cardText(connector.puts().at(-1)?.body.attachments[0].content);
      expect(shared).toContain('Isolated by Morgan Lee');
      expect(shared).not.toContain(EXPERT_USER.aadObjectId);
    }, WAIT);

    const rejected = await activity(
      cardAction('reject', { incidentId: INCIDENT, actionId: 'act-3' }, { replyToId: activityId }),
    );
    expect(cardText(rejected.body.value)).toContain(`Rejected by ${EXPERT_USER.name}`);
    // The audit trail keeps the identity, never the display name.
    expect(
      (await store.listAudit(INCIDENT)).filter((e) => e.event === 'approve' || e.event === 'reject'),
    ).toMatchObject([
      { actor: `teams:${EXPERT_USER.aadObjectId}`, outcome: 'ok' },
      { actor: `teams:${EXPERT_USER.aadObjectId}`, outcome: 'ok' },
    ]);
  });

  it('lets a customer mark their task done from the card and refresh their own view', async () => {
    await start();
    const activityId = await postedIncident();
    const refresh = await activity(
      cardAction('refresh', { incidentId: INCIDENT }, { from: CUSTOMER_USER, replyToId: activityId }),
    );
    expect(buttons(refresh.body.value, 'approve')).toEqual([]);
    expect(buttons(refresh.body.value, 'markDone')).toEqual(['act-5']);
    const done = await activity(
      cardAction(
        'markDone',
        { incidentId: INCIDENT, actionId: 'act-5' },
        { from: CUSTOMER_USER, replyToId: activityId },
      ),
    );
    expect(done.status).toBe(200);
    expect(buttons(done.body.value, 'markDone')).toEqual([]);
    expect((await store.getAction(INCIDENT, 'act-5'))?.state).toBe('doneByCustomer');
  });

  it('shows Run it myself to admins only and runs the task once as their decision; an expert click is refused', async () => {
    await start();
    const activityId = await postedIncident();
    const view = async (from: typeof EXPERT_USER) =>
      (await activity(cardAction('refresh', { incidentId: INCIDENT }, { from, replyToId: activityId }))).body
        .value;
    expect(buttons(await view(ADMIN_USER), 'runMyself')).toEqual(['act-5']);
    expect(buttons(await view(CUSTOMER_USER), 'runMyself')).toEqual([]);
    expect(buttons(await view(EXPERT_USER), 'runMyself')).toEqual([]);
    const shared = connector.cardPosts()[0]?.body.attachments[0].content;
    expect(buttons(shared, 'runMyself')).toEqual([]);

    const click = (from: typeof EXPERT_USER) =>
      activity(
        cardAction('runMyself', { incidentId: INCIDENT, actionId: 'act-5' }, { from, replyToId: activityId }),
      );
    const refused = await click(EXPERT_USER);
    expect(cardText(refused.body.value)).toContain("Run it myself is the customer's own decision");
    expect((await store.getAction(INCIDENT, 'act-5'))?.state).toBe('customerPending');

    expect((await click(ADMIN_USER)).body).toMatchObject({ statusCode: 200, type: CARD });
    await vi.waitFor(
      async () => expect((await store.getAction(INCIDENT, 'act-5'))?.state).toBe('succeeded'),
      WAIT,
    );
    expect(executor.calls).toEqual([`${INCIDENT}:act-5`]);
    expect(await store.getAction(INCIDENT, 'act-5')).toMatchObject({
      decidedBy: `teams:${ADMIN_USER.aadObjectId}`,
      decidedAs: 'customer',
    });
    expect((await store.listAudit(INCIDENT)).filter((e) => e.event === 'runMyself')).toMatchObject([
      { actor: `teams:${EXPERT_USER.aadObjectId}`, outcome: 'refused' },
      { actor: `teams:${ADMIN_USER.aadObjectId}`, platform: 'teams', outcome: 'ok' },
    ]);
  });

  it('lets a customer skip a task with the reason typed under Skip, and refuses it without one', async () => {
    await start();
    const activityId = await postedIncident();
    const skip = (data: Record<string, unknown>) =>
      activity(
        cardAction(
          'skip',
          { incidentId: INCIDENT, actionId: 'act-5', ...data },
          { from: CUSTOMER_USER, replyToId: activityId },
        ),
      );
    const refused = await skip({});
    expect(cardText(refused.body.value)).toContain('say why the task is skipped');
    expect((await store.getAction(INCIDENT, 'act-5'))?.state).toBe('customerPending');

    const skipped = await skip({ 'reason-act-5': 'the server is being rebuilt' });
    expect(skipped.body).toMatchObject({ statusCode: 200, type: CARD });
    expect(buttons(skipped.body.value, 'skip')).toEqual([]);
    expect(await store.getAction(INCIDENT, 'act-5')).toMatchObject({
      state: 'skippedByCustomer',
      skippedBy: `teams:${CUSTOMER_USER.aadObjectId}`,
      skipReason: 'the server is being rebuilt',
    });
    expect(await store.listTasks('pending')).toEqual([]);
  });

  it('refuses clicks from another tenant than MicrosoftAppTenantId and from users without an Entra id', async () => {
    await start({ MicrosoftAppTenantId: '11111111-2222-3333-4444-555555555555' });
    await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body: sampleIngestBody(shippedSample()) });
    const foreign = await activity(cardAction('approve', { incidentId: INCIDENT, actionId: 'act-1' }));
    expect(foreign.status).toBe(403);
    expect(foreign.body).toMatchObject({ error: { code: 'forbidden' } });
    expect(cardText(foreign.body)).not.toContain('fin-wks');
    expect(await store.listAudit()).toMatchObject([
      {
        event: 'teams-activity',
        outcome: 'refused',
        platform: 'teams',
        detail: expect.stringContaining('MicrosoftAppTenantId'),
      },
    ]);
    await bot.close();

    await start();
    await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body: sampleIngestBody(shippedSample()) });
    const anonymous = await activity(
      cardAction(
        'approve',
        { incidentId: INCIDENT, actionId: 'act-1' },
        { from: { id: '29:guest', name: 'Guest' } as any },
      ),
    );
    expect(anonymous.status).toBe(403);
    expect((await store.listAudit()).at(-1)).toMatchObject({
      outcome: 'refused',
      actor: expect.stringContaining('29:guest'),
      detail: expect.stringContaining('Entra identity is unknown'),
    });
    expect((await store.getAction(INCIDENT, 'act-1'))?.state).toBe('proposed');
    expect(executor.calls).toEqual([]);
  });

  it('answers chat commands: pending as a card with Mark done buttons, others as text', async () => {
    await start();
    await postedIncident();
    expect((await activity(mentionMessage('pending', { from: CUSTOMER_USER }))).status).toBe(200);
    await vi.waitFor(
      () => expect(connector.posts().some((c) => c.path.includes('messageid'))).toBe(true),
      WAIT,
    );
    const reply = connector.posts().find((c) => c.path.includes('messageid'))!;
    const card = reply.body.attachments[0].content;
    expect(buttons(card, 'markDone')).toEqual(['act-5']);

    const done = await activity(
      cardAction(
        'markDone',
        { incidentId: INCIDENT, actionId: 'act-5' },
        { from: CUSTOMER_USER, replyToId: 'task-list-1' },
      ),
    );
    expect(cardText(done.body.value)).toContain('No pending customer tasks');

    await activity(mentionMessage('exclusions'));
    await vi.waitFor(
      () => expect(connector.posts().at(-1)?.body.text).toContain('device-group Finance-Servers'),
      WAIT,
    );
    expect(connector.posts().at(-1)?.body.textFormat).toBe('plain');
  });

  it('backs off on 429 from the connector and delivers the card exactly once', async () => {
    await start();
    connector.fail({ status: 429, body: { error: { code: 'Throttled', message: 'slow down' } } });
    const activityId = await postedIncident();
    expect(connector.posts().map((c) => c.path)).toHaveLength(2);
    expect(connector.cardPosts()).toHaveLength(2);
    expect(activityId).toBe('card-1');

    await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body: sampleIngestBody(shippedSample()) });
    await activity(
      cardAction('reject', { incidentId: INCIDENT, actionId: 'act-3' }, { replyToId: activityId }),
    );
    await vi.waitFor(() => expect(connector.puts().length).toBeGreaterThan(0), WAIT);
    expect(connector.cardPosts()).toHaveLength(2);
    expect(await store.getCardRefs(INCIDENT)).toEqual({
      teams: [{ conversationId: CHANNEL_ID, activityId }],
    });
  });

  it.each([
    { status: 429, retryAfter: '1' },
    { status: 503, retryAfter: '1' },
    { status: 502, retryAfter: undefined },
  ])(
    'queues the card again after a $status (Retry-After $retryAfter) instead of waiting, and posts it once',
    async ({ status, retryAfter }) => {
      await start();
      const paused = vi.spyOn(store, 'pauseChannel');
      const queued = vi.spyOn(bot.runtime.queue, 'add');
      connector.fail({
        status,
        body: { error: { code: status === 429 ? 'Throttled' : 'ServiceError', message: 'try later' } },
        ...(retryAfter ? { headers: { 'Retry-After': retryAfter } } : {}),
      });
      const activityId = await postedIncident();
      const [refused] = connector.cardPosts();
      // One try each time: the connector's own retries are off, the queue tries again after the wait.
      expect(connector.cardPosts()).toHaveLength(2);
      // The channel's card went back to the queue as a delivery of its own (the wait is not in the job).
      const again = queued.mock.calls.filter(
        ([, data]) => (data as { targets?: string[] }).targets?.includes(CHANNEL_ID) === true,
      );
      expect(again).toHaveLength(1);
      expect(again[0]?.[2]?.delayMs).toBeGreaterThan(0);
      if (status === 429) {
        // Throttled: the conversation is paused for every replica until Retry-After has passed.
        expect(paused).toHaveBeenCalledTimes(1);
        expect(paused.mock.calls[0]?.[0]).toBe(teamsConversationPause(CHANNEL_ID));
        expect(paused.mock.calls[0]?.[1]).toBeGreaterThanOrEqual(refused!.at + 1_000);
      } else {
        expect(paused).not.toHaveBeenCalled();
      }
      expect(activityId).toBe('card-1');
      expect(await store.getCardRefs(INCIDENT)).toEqual({
        teams: [{ conversationId: CHANNEL_ID, activityId }],
      });
    },
  );

  it('gives up a connector call that does not answer in time and posts the card in a later try, once', async () => {
    const slow = nock(new URL(TEAMS_SERVICE_URL).origin)
      .post(/\/amer\/v3\/conversations\//)
      .delay(3_000)
      .reply(200, { id: 'too-late' });
    await start({}, { callTimeoutMs: 300 });
    const activityId = await postedIncident();
    expect(slow.isDone()).toBe(true);
    // The card is the one of the later try, not the answer that came too late.
    expect(activityId).toBe('card-1');
    expect(connector.cardPosts()).toHaveLength(1);
  });

  it('drops a conversation that answers 403 MessageWritesBlocked', async () => {
    await start();
    connector.fail({
      status: 403,
      body: { error: { code: 'MessageWritesBlocked', message: 'bot blocked' } },
    });
    await activity(botAddedToTeam());
    await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body: sampleIngestBody(shippedSample()) });
    await vi.waitFor(async () => expect(await store.listConversations()).toEqual([]), WAIT);
    expect(connector.posts()).toHaveLength(1);
  });

  it('answers 401 to a request from a non-loopback address and runs nothing', async () => {
    await start();
    const handler = createTeams(bot.runtime, {}).handler;
    const res = { statusCode: 0, body: undefined as unknown } as any;
    res.status = (code: number) => {
      res.statusCode = code;
      return res;
    };
    res.json = (body: unknown) => {
      res.body = body;
      return res;
    };
    const next = vi.fn();
    const req = {
      socket: { remoteAddress: '10.20.14.57' },
      headers: {},
      body: botAddedToTeam(),
      method: 'POST',
    };
    handler(req as any, res, next);
    await vi.waitFor(() => expect(res.statusCode).toBe(401));
    expect(res.body).toMatchObject({ error: { code: 'unauthorized' } });
    expect(next).not.toHaveBeenCalled();
    expect(await store.listConversations()).toEqual([]);
  });

  const lanAddress = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;

  it.skipIf(!lanAddress)('answers 401 over a real socket on a non-loopback address', async () => {
    await start();
    const app = createHttpApp(bot.runtime, { teams: createTeams(bot.runtime, {}).handler });
    const server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, lanAddress, resolve));
    try {
      nock.enableNetConnect(lanAddress);
      const { port } = server.address() as AddressInfo;
      const res = await send(`http://${lanAddress}:${port}/api/messages`, { body: botAddedToTeam() });
      expect(res.status).toBe(401);
      expect(await store.listConversations()).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('isLoopbackAddress', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.255.3.4', true],
    ['::1', true],
    ['::ffff:127.0.0.1', true],
    ['0:0:0:0:0:0:0:1', true],
    ['10.0.0.1', false],
    ['128.0.0.1', false],
    ['::ffff:10.0.0.1', false],
    ['::2', false],
    ['fe80::1', false],
    ['localhost', false],
    ['', false],
    [undefined, false],
  ])('%s -> %s', (address, expected) => {
    expect(isLoopbackAddress(address)).toBe(expected);
  });
});

describe('Teams with MicrosoftAppId set', () => {
  let bot: BotServer;
  let store: RedisStore;

  const startWith = async (extra: Record<string, string> = {}) => {
    store = new RedisStore({ url: redis.url }, `${redis.prefix}${randomUUID().slice(0, 8)}:`);
    const env = { ...TEAMS_AUTH_ENV, ...extra };
    bot = await startBot({
      env,
      parts: { store, storeKind: 'redis' },
      mounts: (rt) => ({ teams: createTeams(rt, env).handler }),
    });
  };
  beforeEach(() => {
    fakeBotFramework();
  });
  afterEach(async () => {
    await bot.close();
  });

  const forger = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

  it('answers 401 without a token, with a garbage token and with a forged one, and runs nothing', async () => {
    await startWith();
    const url = `${bot.url}/api/messages`;
    const results = [
      await send(url, { body: botAddedToTeam() }),
      await send(url, { body: botAddedToTeam(), token: 'not-a-jwt' }),
      await send(url, { body: botAddedToTeam(), token: channelToken({}, forger) }),
      await send(url, { body: botAddedToTeam(), token: channelToken({ aud: 'someone-else' }) }),
      await send(url, { body: cardAction('approve', { incidentId: INCIDENT, actionId: 'act-1' }) }),
    ];
    expect(results.map((r) => r.status)).toEqual([401, 401, 401, 401, 401]);
    expect(results[0]!.body).toMatchObject({ error: { code: 'unauthorized' } });
    expect(await store.listConversations()).toEqual([]);
    expect(await store.listAudit(INCIDENT)).toEqual([]);
  });

  it('answers 401, not 500, when the signing keys cannot be fetched', async () => {
    const metadata = 'https://openid.test.local/v1/.well-known/openidconfiguration';
    nock('https://openid.test.local').persist().get(/.*/).reply(503, 'unavailable');
    await startWith({ ToBotFromChannelOpenIdMetadataUrl: metadata });
    const res = await send(`${bot.url}/api/messages`, {
      body: botAddedToTeam(),
      token: channelToken({}, forger),
    });
    expect(res.status).toBe(401);
    expect(await store.listConversations()).toEqual([]);
  });

  it('accepts a request signed with a Bot Framework key for this app id', async () => {
    await startWith();
    const res = await send(`${bot.url}/api/messages`, {
      body: botAddedToTeam(),
      token: channelToken(),
    });
    expect(res.status).toBe(200);
    expect((await store.listConversations()).map((c) => c.conversationId)).toEqual([CHANNEL_ID]);
  });
});

describe('Teams app manifest and package', () => {
  const appId = 'b07b07b0-0000-4000-8000-000000000b07';
  const template = readFileSync(new URL('../../manifest/teams/manifest.json', import.meta.url), 'utf8');

  const pngSize = (png: Buffer) => {
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    return [png.readUInt32BE(16), png.readUInt32BE(20)];
  };

  it('validates against its bundled Teams schema once filled, with the fixed commands', async () => {
    const manifest = fillManifest(template, { MicrosoftAppId: appId }) as any;
    expect(manifest.$schema).toMatch(
      /^https:\/\/developer\.microsoft\.com\/.*\/teams\/v1\.\d+\/MicrosoftTeams\.schema\.json$/,
    );
    expect(await AppManifestUtils.validateAgainstSchema(manifest)).toEqual([]);
    expect(manifest.id).toBe(appId);
    expect(manifest.bots[0]).toMatchObject({ botId: appId, scopes: ['team', 'groupChat', 'personal'] });
    expect(manifest.bots[0].commandLists[0].commands.map((c: { title: string }) => c.title)).toEqual([
      'help',
      'pending',
      'done',
      'retry',
      'handover',
      'exclusions',
      'exclude',
      'unexclude',
    ]);
  });

  it('refuses to package without MicrosoftAppId, saying what to set', () => {
    expect(() => fillManifest(template, {})).toThrow(/MicrosoftAppId is not set/);
    expect(() => fillManifest(template, { MicrosoftAppId: 'not-a-guid' })).toThrow(/not a GUID/);
  });

  it('packages the filled manifest and both icons at their sizes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'teams-app-'));
    try {
      const output = join(dir, 'teams-app.zip');
      await packageTeamsApp({ MicrosoftAppId: appId }, output);
      const zip = await JSZip.loadAsync(readFileSync(output));
      expect(Object.keys(zip.files).sort()).toEqual(['color.png', 'manifest.json', 'outline.png']);
      const manifest = JSON.parse(await zip.file('manifest.json')!.async('string'));
      expect(manifest.bots[0].botId).toBe(appId);
      expect(JSON.stringify(manifest)).not.toContain('${{');
      expect(pngSize(await zip.file('color.png')!.async('nodebuffer'))).toEqual([192, 192]);
      expect(pngSize(await zip.file('outline.png')!.async('nodebuffer'))).toEqual([32, 32]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
