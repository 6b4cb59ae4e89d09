import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RedisStore } from '../../adapters/redis-store.js';
import { createSlack } from '../../bot/slack/create-slack.js';
import { createTeams } from '../../bot/teams/index.js';
import type { ActionState } from '../../core/actions.js';
import { ADMIN_TOKEN, type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import {
  blockActionsPayload,
  formBody,
  postSlack,
  RESPONSE_URL_ORIGIN,
  SLACK_API_ORIGIN,
  SLACK_API_URL,
  SLACK_BOT_TOKEN,
  SLACK_SIGNING_SECRET,
  slackSignatureHeaders,
  slashCommandFields,
} from '../support/slack.js';
import { BOT, CHANNEL_ID, TEAMS_SERVICE_URL, TENANT_ID } from '../support/teams.js';

/** Cases per property: at least 2,000 in every run, more with FUZZ_RUNS. */
const RUNS = Math.max(2_000, Number(process.env.FUZZ_RUNS) || 0);
const TIMEOUT = 600_000;

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

const newStore = () => new RedisStore({ url: redis.url }, `${redis.prefix}${randomUUID().slice(0, 8)}:`);

/** A JSON value of any shape, scalars included, with the odd strings that break parsers. */
const anyJson = fc.jsonValue({ maxDepth: 4 });
const oddString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '%ZZ',
    '../../etc/passwd',
    '__proto__',
    'constructor',
    '<script>alert(1)</script>',
    '\u0000',
    '\ud800',
    'a'.repeat(5_000),
    '48213',
    'act-1',
    '1e5bc9d7e413ddd7902c2932e418702b84d0cc07',
  ),
);
const oddValue = fc.oneof(oddString, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), anyJson);

/** Set `value` at a random path of a deep copy of `base` (or delete what is there). */
function mutate(base: unknown, path: (string | number)[], value: unknown, remove: boolean): unknown {
  const copy = structuredClone(base) as Record<string | number, unknown>;
  let node: Record<string | number, unknown> = copy;
  for (let i = 0; i < path.length - 1; i += 1) {
    const next = node[path[i] as string | number];
    if (!next || typeof next !== 'object') return copy;
    node = next as Record<string | number, unknown>;
  }
  const last = path.at(-1);
  if (last === undefined) return value;
  if (remove) delete node[last];
  else node[last] = value;
  return copy;
}

/** Every path of a JSON document, so mutations reach deep fields (targets, types, statuses). */
function pathsOf(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (!value || typeof value !== 'object') return [prefix];
  const keys = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
  return [prefix, ...keys.flatMap((k) => pathsOf((value as Record<string, unknown>)[k], [...prefix, k]))];
}

const SAMPLE = sampleIngestBody(shippedSample());
const SAMPLE_PATHS = pathsOf(SAMPLE);
const mutatedSample = fc
  .tuple(fc.constantFrom(...SAMPLE_PATHS), oddValue, fc.boolean())
  .map(([path, value, remove]) => mutate(SAMPLE, path, value, remove));

describe('ingest under fuzzing', () => {
  let bot: BotServer;
  let store: RedisStore;
  afterEach(async () => {
    await bot?.close();
  });

  it(
    `answers ${RUNS} malformed or mutated bodies with 2xx or a clear 4xx, and stores nothing it refused`,
    async () => {
      store = newStore();
      bot = await startBot({ parts: { store, storeKind: 'redis' } });
      const snapshot = async (id: string) => JSON.stringify(await store.getIncident(id));
      let accepted = 0;
      let refused = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            { weight: 6, arbitrary: mutatedSample.map((b) => ({ raw: JSON.stringify(b) ?? 'null' })) },
            { weight: 2, arbitrary: anyJson.map((b) => ({ raw: JSON.stringify(b) })) },
            { weight: 1, arbitrary: fc.string({ maxLength: 200 }).map((raw) => ({ raw })) },
          ),
          async ({ raw }) => {
            let id = '48213';
            try {
              const parsed = JSON.parse(raw) as { incident?: { id?: unknown } };
              if (typeof parsed?.incident?.id === 'string' || typeof parsed?.incident?.id === 'number')
                id = String(parsed.incident.id);
            } catch {
              // not JSON: the sample's id is what could have been touched
            }
            const safeId = /^[\w.:-]{1,128}$/.test(id) ? id : '48213';
            const before = await snapshot(safeId);
            const res = await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, raw });
            expect(res.status, JSON.stringify(res.body)).toBeLessThan(500);
            if (res.status >= 400) {
              refused += 1;
              expect(res.body?.error?.code, raw.slice(0, 300)).toEqual(expect.any(String));
              expect(res.body.error.message).toEqual(expect.any(String));
              expect(await snapshot(safeId)).toBe(before);
            } else {
              accepted += 1;
              expect(await store.getIncident(String(res.body.id))).not.toBeNull();
            }
          },
        ),
        { numRuns: RUNS },
      );
      expect(accepted + refused).toBe(RUNS);
      expect(refused).toBeGreaterThan(RUNS / 4);
      expect((await send(`${bot.url}/healthz`)).status).toBe(200);
    },
    TIMEOUT,
  );
});

/** The decisions a stranger must never cause: only experts approve, and nothing runs without approval. */
const EXPERT_ONLY: ActionState[] = ['approved', 'executing', 'succeeded', 'rejected', 'expertTask'];

async function statesOf(store: RedisStore, incidentId: string): Promise<Record<string, ActionState>> {
  const state = await store.getIncident(incidentId);
  return Object.fromEntries((state?.actions ?? []).map((a) => [a.id, a.state]));
}

/** Send RUNS generated bodies: none may get a 5xx, and a good share must reach the bot's own handlers. */
async function expectNoServerErrors(
  bodies: fc.Arbitrary<string>,
  post: (raw: string) => Promise<{ status: number }>,
): Promise<void> {
  let served = 0;
  await fc.assert(
    fc.asyncProperty(bodies, async (raw) => {
      const res = await post(raw);
      expect(res.status, raw.slice(0, 300)).toBeLessThan(500);
      if (res.status === 200) served += 1;
    }),
    { numRuns: RUNS },
  );
  // Not only refusals at the door.
  expect(served).toBeGreaterThan(RUNS / 20);
}

/** No action moved to a state only an expert's decision can bring about. */
async function expectStrangerDecidedNothing(
  store: RedisStore,
  before: Record<string, ActionState>,
): Promise<void> {
  const after = await statesOf(store, '48213');
  for (const [id, state] of Object.entries(after)) {
    if (state !== before[id]) expect(EXPERT_ONLY, `${id}: ${before[id]} -> ${state}`).not.toContain(state);
  }
}

describe('Slack payloads under fuzzing', () => {
  let bot: BotServer;
  let store: RedisStore;
  afterEach(async () => {
    await bot?.close();
  });

  it(
    `answers ${RUNS} signed but hostile button and command payloads without a 5xx, and a stranger decides nothing`,
    async () => {
      nock(SLACK_API_ORIGIN)
        .persist()
        .post(/\/api\/auth\.test/)
        .reply(200, {
          ok: true,
          url: 'https://contoso-soc.slack.com/',
          team: 'Contoso SOC',
          user: 'mdr',
          team_id: 'T0CONTOSO',
          user_id: 'U0MDRBOT',
          bot_id: 'B0MDRBOT',
          is_enterprise_install: false,
        })
        .post(/\/api\/chat\.(postMessage|update|postEphemeral)/)
        .reply(200, { ok: true, channel: 'C0SOC', ts: '1741942000.000100' });
      nock(RESPONSE_URL_ORIGIN).persist().post(/.*/).reply(200, 'ok');
      store = newStore();
      bot = await startBot({
        env: { SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL },
        parts: { store, storeKind: 'redis' },
        config: (c) => ({
          ...c,
          policy: {
            ...c.policy,
            roles: { experts: ['slack:U0EXPERT1'], admins: ['slack:U0ADMIN1'] },
            channels: { slack: 'C0SOC' },
          },
        }),
        mounts: (rt) => ({ slack: createSlack(rt).handler }),
      });
      expect(
        (
          await send(`${bot.url}/api/incidents`, {
            token: INGEST_TOKEN,
            body: sampleIngestBody(shippedSample()),
          })
        ).status,
      ).toBe(201);
      const before = await statesOf(store, '48213');
      const exclusionsBefore = (await send(`${bot.url}/api/exclusions`, { token: ADMIN_TOKEN })).body;

      const stranger = fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom('U0CUSTOMER', 'U0GUEST', 'W0EXTERNAL') },
        { weight: 4, arbitrary: fc.stringMatching(/^U[A-Z0-9]{8,10}$/) },
        { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
      );
      const button = fc.record({
        action_id: fc.oneof(
          fc.constantFrom('approve:act-1', 'reject:act-2', 'markDone:act-5', 'open:portal', 'approve:'),
          oddString,
        ),
        value: fc.oneof(
          fc.constantFrom(
            JSON.stringify({ incidentId: '48213', actionId: 'act-1' }),
            JSON.stringify({ incidentId: '48213', actionId: 'act-1', as: 'slack:U0EXPERT1' }),
            JSON.stringify({ incidentId: '../48213', actionId: 'act-1' }),
          ),
          anyJson.map((v) => JSON.stringify(v)),
          oddString,
        ),
      });
      const click = fc
        .tuple(
          stranger,
          button,
          fc.option(
            fc.dictionary(
              fc.constantFrom('team', 'user', 'container', 'actions', 'type', 'channel'),
              oddValue,
            ),
            { nil: undefined },
          ),
        )
        .map(([user, b, overrides]) =>
          formBody({ payload: JSON.stringify(blockActionsPayload(user, b, overrides ?? {})) }),
        );
      const command = fc
        .tuple(
          stranger,
          fc.oneof(
            fc.constantFrom(
              'approve 48213:act-1',
              'done 48213:act-5',
              'exclusions',
              'unexclude device-group Finance-Servers',
              'pending',
            ),
            oddString,
          ),
          fc.dictionary(
            fc.constantFrom('team_id', 'channel_id', 'command', 'user_id', 'response_url'),
            oddString,
          ),
        )
        .map(([user, text, overrides]) => formBody(slashCommandFields(user, text, overrides)));
      const garbage = fc.oneof(
        fc.string({ maxLength: 300 }),
        anyJson.map((v) => formBody({ payload: JSON.stringify(v) })),
        oddString.map((s) => formBody({ payload: s })),
      );

      await expectNoServerErrors(fc.oneof(click, command, garbage), (raw) =>
        postSlack(bot.url, raw, slackSignatureHeaders(raw)),
      );
      await expectStrangerDecidedNothing(store, before);
      expect((await send(`${bot.url}/api/exclusions`, { token: ADMIN_TOKEN })).body).toEqual(
        exclusionsBefore,
      );
      expect((await send(`${bot.url}/healthz`)).status).toBe(200);
    },
    TIMEOUT,
  );
});

describe('Teams activities under fuzzing (local mode, loopback)', () => {
  let bot: BotServer;
  let store: RedisStore;
  afterEach(async () => {
    await bot?.close();
  });

  it(
    `answers ${RUNS} malformed activities without a 5xx, and a stranger decides nothing`,
    async () => {
      const origin = new URL(TEAMS_SERVICE_URL).origin;
      nock(origin).persist().post(/.*/).reply(200, { id: 'reply-1' });
      nock(origin).persist().put(/.*/).reply(200, { id: 'reply-1' });
      store = newStore();
      bot = await startBot({
        parts: { store, storeKind: 'redis' },
        config: (c) => ({
          ...c,
          policy: { ...c.policy, roles: { experts: ['teams:expert-aad-object-id'], admins: [] } },
        }),
        mounts: (rt) => ({ teams: createTeams(rt, {}).handler }),
      });
      expect(
        (
          await send(`${bot.url}/api/incidents`, {
            token: INGEST_TOKEN,
            body: sampleIngestBody(shippedSample()),
          })
        ).status,
      ).toBe(201);
      const before = await statesOf(store, '48213');

      /** Mostly the well-formed value, sometimes a hostile one: so most activities reach the bot. */
      const mostly = <T>(good: fc.Arbitrary<T>) =>
        fc.oneof({ weight: 9, arbitrary: good }, { weight: 1, arbitrary: oddValue });
      const required = fc.record({
        type: mostly(
          fc.constantFrom('message', 'invoke', 'conversationUpdate', 'installationUpdate', 'event'),
        ),
        channelId: mostly(fc.constantFrom('msteams', 'msteams', 'msteams', 'emulator', 'slack')),
        serviceUrl: mostly(fc.constant(TEAMS_SERVICE_URL)),
        from: mostly(
          fc.record({
            id: fc.oneof(fc.constant('29:1stranger'), oddString),
            name: oddString,
            aadObjectId: fc.oneof(fc.uuid(), oddString),
          }),
        ),
        recipient: mostly(fc.constant(BOT)),
        conversation: mostly(
          fc.record({
            id: fc.oneof(fc.constant(CHANNEL_ID), oddString),
            tenantId: fc.oneof(fc.constant(TENANT_ID), oddString),
            conversationType: fc.constantFrom('channel', 'personal', 'groupChat'),
          }),
        ),
      });
      const optional = fc.record(
        {
          id: oddString,
          channelData: fc.oneof(
            fc.record({ tenant: fc.record({ id: fc.oneof(fc.constant(TENANT_ID), oddString) }) }),
            oddValue,
          ),
          text: fc.oneof(
            fc.constantFrom(
              'exclusions',
              'done 48213:act-5',
              'unexclude device-group Finance-Servers',
              'pending',
              'help',
            ),
            oddString,
          ),
          name: fc.oneof(fc.constant('adaptiveCard/action'), oddString),
          value: fc.oneof(
            fc.record({
              action: fc.record({
                type: fc.constant('Action.Execute'),
                verb: fc.oneof(fc.constantFrom('approve', 'reject', 'markDone', 'refresh'), oddString),
                data: fc.oneof(fc.constant({ incidentId: '48213', actionId: 'act-1' }), anyJson),
              }),
            }),
            anyJson,
          ),
          membersAdded: fc.oneof(fc.constant([{ id: BOT.id }]), anyJson),
          replyToId: oddString,
        },
        { requiredKeys: [] },
      );
      const activity = fc.tuple(required, optional).map(([r, o]) => ({ ...o, ...r }));
      const body = fc.oneof(
        { weight: 8, arbitrary: activity.map((a) => JSON.stringify(a)) },
        { weight: 1, arbitrary: anyJson.map((v) => JSON.stringify(v)) },
        { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
      );

      await expectNoServerErrors(body, (raw) => send(`${bot.url}/api/messages`, { raw }));
      await expectStrangerDecidedNothing(store, before);
      expect((await send(`${bot.url}/healthz`)).status).toBe(200);
    },
    TIMEOUT,
  );
});
