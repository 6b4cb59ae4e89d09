import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DryRunExecutor } from '../../adapters/dry-run-executor.js';
import { MemoryStore } from '../../adapters/memory-store.js';
import { createSlack, type Slack } from '../../bot/slack/create-slack.js';
import { buttonValue } from '../../cards/slack/render.js';
import { renderSlackSkipModal } from '../../cards/slack/skip-modal.js';
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import {
  AUTH_TEST_RESPONSE,
  clickButton,
  fakeAuthTest,
  formBody,
  type OpenedView,
  postSlack,
  RESPONSE_URL_ORIGIN,
  SLACK_API_ORIGIN,
  SLACK_API_URL,
  SLACK_BOT_TOKEN,
  SLACK_SIGNING_SECRET,
  SLACK_TEAM_ID,
  slackSignatureHeaders,
  slashCommandFields,
  viewSubmissionPayload,
} from '../support/slack.js';

const EXPERT = 'U0EXPERT1';
const ADMIN = 'U0ADMIN1';
const OTHER_TEAM = 'T0OTHERORG';

let policyDir: string;
beforeAll(() => {
  policyDir = mkdtempSync(join(tmpdir(), 'mdr-slack-scope-'));
  writeFileSync(
    join(policyDir, 'policy.yaml'),
    `roles:\n  experts: [slack:${EXPERT}]\n  admins: [slack:${ADMIN}]\nexclusions:\n  devices:\n    - group: Finance-Servers\nchannels:\n  slack: C0SOC\n`,
  );
});
afterAll(() => {
  rmSync(policyDir, { recursive: true, force: true });
});

describe('Slack requests from another workspace than the bot token', () => {
  let bot: BotServer;
  let slack: Slack;
  let store: MemoryStore;
  let executor: DryRunExecutor;
  let responses: { path: string; body: any }[];

  const start = async (authRetry?: { firstMs: number; maxMs: number }) => {
    store = new MemoryStore();
    executor = new DryRunExecutor();
    bot = await startBot({
      env: {
        SLACK_BOT_TOKEN,
        SLACK_SIGNING_SECRET,
        SLACK_API_URL,
        POLICY_FILE: join(policyDir, 'policy.yaml'),
      },
      parts: { store, executor },
      mounts: (rt) => {
        slack = createSlack(rt, authRetry ? { authRetry } : {});
        return { slack: slack.handler };
      },
    });
  };
  const command = (user: string, text: string, overrides: Record<string, string> = {}) =>
    postSlack(bot.url, formBody(slashCommandFields(user, text, overrides)));
  const refusals = async () =>
    (await store.listAudit()).filter((e) => e.outcome === 'refused').map((e) => e.detail);

  beforeEach(() => {
    nock.disableNetConnect();
    nock.enableNetConnect(/127\.0\.0\.1|localhost/);
    nock(SLACK_API_ORIGIN)
      .persist()
      .post(/\/api\/chat\.(postMessage|update)/)
      .reply(200, {
        ok: true,
        channel: 'C0SOC',
        ts: '1741942000.000001',
      });
    responses = [];
    nock(RESPONSE_URL_ORIGIN)
      .persist()
      .post(/.*/)
      .reply(200, (uri, body) => {
        responses.push({ path: uri, body });
        return 'ok';
      });
  });
  afterEach(async () => {
    await bot?.close();
    nock.cleanAll();
    nock.enableNetConnect();
  });

  it("refuses an expert's Approve from another workspace (or by a user of another one): nothing reaches the core, the refusal is audited", async () => {
    fakeAuthTest();
    await start();
    const res = await send(`${bot.url}/api/incidents`, {
      token: INGEST_TOKEN,
      body: sampleIngestBody(shippedSample()),
    });
    expect(res.status).toBe(201);
    const approve = { action_id: 'approve:act-1', value: buttonValue('48213', 'act-1') };

    const foreignTeam = await clickButton(bot.url, EXPERT, approve, {
      team: { id: OTHER_TEAM, domain: 'other' },
      user: { id: EXPERT, username: 'x', name: 'x', team_id: OTHER_TEAM },
    });
    const foreignUser = await clickButton(bot.url, EXPERT, approve, {
      user: { id: EXPERT, username: 'x', name: 'x', team_id: OTHER_TEAM },
    });

    expect([foreignTeam.status, foreignUser.status]).toEqual([200, 200]);
    await vi.waitFor(() => expect(responses).toHaveLength(2), { timeout: 5_000, interval: 25 });
    for (const r of responses)
      expect(r.body).toMatchObject({
        response_type: 'ephemeral',
        text: expect.stringContaining('workspace'),
      });
    expect((await store.getAction('48213', 'act-1'))?.state).toBe('proposed');
    expect(executor.records).toEqual([]);
    expect(await store.listAudit('48213')).not.toContainEqual(expect.objectContaining({ event: 'approve' }));
    const audited = (await store.listAudit()).filter((e) => e.outcome === 'refused');
    expect(audited).toHaveLength(2);
    expect(audited[0]).toMatchObject({
      actor: `slack-unverified:${OTHER_TEAM}:${EXPERT}`,
      platform: 'slack',
      event: 'approve',
      detail: expect.stringContaining(`wrong_workspace: a request from Slack workspace ${OTHER_TEAM}`),
    });
  });

  it('refuses a Skip reason submitted from another workspace, even one named by the view alone: the task stays pending', async () => {
    fakeAuthTest();
    await start();
    await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body: sampleIngestBody(shippedSample()) });
    expect((await store.getAction('48213', 'act-5'))?.state).toBe('customerPending');
    const view = renderSlackSkipModal({ incidentId: '48213', actionId: 'act-5' });
    const opened = { ...view, blocks: view.blocks as OpenedView['blocks'] } as OpenedView;
    const payload = viewSubmissionPayload(ADMIN, opened, 'not needed');
    const foreignView = { ...payload, view: { ...(payload.view as object), team_id: OTHER_TEAM } };

    const res = await postSlack(bot.url, formBody({ payload: JSON.stringify(foreignView) }));

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ response_action: 'update', view: { type: 'modal' } });
    expect(JSON.stringify(res.body.view)).toContain('installed for');
    expect((await store.getAction('48213', 'act-5'))?.state).toBe('customerPending');
    expect(await store.listAudit('48213')).not.toContainEqual(expect.objectContaining({ event: 'skip' }));
    expect(await refusals()).toEqual([
      expect.stringContaining(`wrong_workspace: a request from Slack workspace ${OTHER_TEAM}`),
    ]);
    expect((await store.listAudit()).at(-1)).toMatchObject({
      event: 'skip',
      actor: `slack-unverified:${OTHER_TEAM}:${ADMIN}`,
    });
  });

  it('refuses /mdr exclusions from another workspace without listing anything, and audits it', async () => {
    fakeAuthTest();
    await start();

    const foreign = await command(ADMIN, 'exclusions', { team_id: OTHER_TEAM, team_domain: 'other' });
    const ours = await command(ADMIN, 'exclusions');

    expect(foreign.status).toBe(200);
    expect(foreign.body).toMatchObject({ response_type: 'ephemeral' });
    expect(foreign.body.text).toContain('only in the Slack workspace it was installed for');
    expect(JSON.stringify(foreign.body)).not.toContain('Finance-Servers');
    expect(JSON.stringify(ours.body)).toContain('Finance-Servers');
    expect(await refusals()).toEqual([expect.stringContaining(`wrong_workspace`)]);
    expect((await store.listAudit()).find((e) => e.outcome === 'refused')).toMatchObject({
      event: 'command',
      actor: `slack-unverified:${OTHER_TEAM}:${ADMIN}`,
    });
  });

  it('answers commands only in the SOC channel and direct messages, the exclusion list to experts and admins only, pending and done to the SOC channel; each refusal audited', async () => {
    fakeAuthTest();
    await start();
    const customer = 'U0CUSTOMER';

    const listInSoc = await command(customer, 'exclusions');
    const pendingElsewhere = await command(customer, 'pending', {
      channel_id: 'C0RANDOM',
      channel_name: 'random',
    });
    const doneElsewhere = await command(customer, 'done 48213:act-5', { channel_id: 'C0RANDOM' });
    const pendingInDm = await command(customer, 'pending', {
      channel_id: 'D0CUSTOMER',
      channel_name: 'directmessage',
    });
    const expertInDm = await command(EXPERT, 'exclusions', { channel_id: 'D0EXPERT1' });

    for (const refused of [listInSoc, pendingElsewhere, doneElsewhere, pendingInDm]) {
      expect(refused.body).toMatchObject({ response_type: 'ephemeral' });
      expect(JSON.stringify(refused.body)).not.toContain('Finance-Servers');
    }
    expect(pendingElsewhere.body.text).toContain('<#C0SOC>');
    expect(JSON.stringify(expertInDm.body)).toContain('Finance-Servers');
    const audited = (await store.listAudit()).filter((e) => e.outcome === 'refused');
    expect(audited.map((e) => e.actor)).toEqual(Array(4).fill(`slack:${customer}`));
    expect(audited.map((e) => e.detail.split(':')[0])).toEqual([
      'not_allowed',
      'wrong_place',
      'wrong_place',
      'wrong_place',
    ]);
  });

  it('refuses and audits an event from another workspace', async () => {
    fakeAuthTest();
    await start();
    const raw = JSON.stringify({
      token: 'legacy-verification-token',
      team_id: OTHER_TEAM,
      api_app_id: 'A0MDRBOT',
      event: {
        type: 'app_mention',
        user: 'U0STRANGER',
        text: '<@U0MDRBOT> exclusions',
        ts: '1741942100.000100',
        channel: 'C0ELSEWHERE',
        event_ts: '1741942100.000100',
      },
      type: 'event_callback',
      event_id: 'Ev0FOREIGN1',
      event_time: Math.floor(Date.now() / 1000),
      authorizations: [
        {
          enterprise_id: null,
          team_id: OTHER_TEAM,
          user_id: 'U0MDRBOT',
          is_bot: true,
          is_enterprise_install: false,
        },
      ],
    });

    const res = await postSlack(bot.url, raw, {
      'content-type': 'application/json',
      ...slackSignatureHeaders(raw),
    });

    expect(res.status).toBe(200);
    await vi.waitFor(async () => expect(await refusals()).toHaveLength(1), { timeout: 5_000, interval: 25 });
    expect((await store.listAudit())[0]).toMatchObject({
      event: 'event',
      actor: `slack-unverified:${OTHER_TEAM}:U0STRANGER`,
      detail: expect.stringContaining('wrong_workspace'),
    });
  });

  it('starts when auth.test fails, answers "not ready" to commands and clicks (audited) and serves once auth.test succeeds', async () => {
    let healthy = false;
    nock(SLACK_API_ORIGIN)
      .persist()
      .post('/api/auth.test')
      .reply(200, () => (healthy ? AUTH_TEST_RESPONSE : { ok: false, error: 'invalid_auth' }));
    const logged: string[] = [];
    await start({ firstMs: 20, maxMs: 50 });
    const errors = vi.spyOn(bot.runtime.logger, 'error').mockImplementation(((_o: unknown, msg: string) => {
      logged.push(msg);
    }) as never);

    const early = await command(ADMIN, 'exclusions');
    const click = await clickButton(bot.url, EXPERT, {
      action_id: 'approve:act-1',
      value: buttonValue('48213', 'act-1'),
    });

    expect(early.status).toBe(200);
    expect(early.body.text).toContain('not ready');
    expect(JSON.stringify(early.body)).not.toContain('Finance-Servers');
    expect(click.status).toBe(200);
    await vi.waitFor(() => expect(responses).toHaveLength(1), { timeout: 5_000, interval: 25 });
    expect(responses[0]?.body.text).toContain('not ready');
    expect(await refusals()).toEqual([
      expect.stringContaining('not_ready'),
      expect.stringContaining('not_ready'),
    ]);
    await vi.waitFor(() => expect(logged.join('\n')).toContain('SLACK_BOT_TOKEN'), {
      timeout: 5_000,
      interval: 10,
    });
    errors.mockRestore();

    healthy = true;
    await vi.waitFor(() => expect(slack.workspace.teamId).toBe(SLACK_TEAM_ID), {
      timeout: 5_000,
      interval: 10,
    });
    const later = await command(ADMIN, 'exclusions');
    expect(JSON.stringify(later.body)).toContain('Finance-Servers');
  });
});
