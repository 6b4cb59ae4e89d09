import { readFileSync } from 'node:fs';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { GraphIncidentSource } from '../../adapters/graph-incident-source.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { parsePolicy } from '../../bot/config.js';
import { GRAPH_POLL_CURSOR, IncidentPoller } from '../../bot/incident-poller.js';
import type { GraphIncidentFilter } from '../../core/policy.js';
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { ManualClock } from '../support/core-harness.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import { GRAPH_ORIGIN, GRAPH_TOKEN, GRAPH_URL, nockLogin, testCredential } from './defender-helpers.js';

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../fixtures/graph/${name}.json`, import.meta.url), 'utf8'));
const page = (n: number) => fixture(`incidents-page-${n}`);
/** Four incidents in the documented shape: Defender Experts' system tag, a custom tag, two assigned ones. */
const selection = () => fixture('incidents-selection');
const INCIDENTS = '/msgraph/v1.0/security/incidents';
const PREFER = 'include-unknown-enum-members';
const MINUTE = 60_000;
const clock = new ManualClock(new Date('2026-11-27T10:00:00Z'));
let bot: BotServer;
let redis: TestRedis;

beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
});
afterEach(async () => {
  await bot?.close();
  nock.cleanAll();
});
afterAll(async () => {
  nock.enableNetConnect();
  await redis.cleanup();
});

function poller(intervalSeconds = 60, options: { maxPages?: number } = {}) {
  const source = new GraphIncidentSource({
    credential: testCredential(),
    graphApiUrl: GRAPH_URL,
    sleep: async () => {},
    maxRetries: 0,
    ...options,
  });
  return new IncidentPoller(bot.runtime, source, intervalSeconds);
}

/** A bot whose policy carries `sources.graph.filter` (none: the default filter). */
function startWith(options: { clock?: ManualClock; filter?: GraphIncidentFilter; prefix?: string } = {}) {
  return startBot({
    parts: {
      clock: options.clock ?? clock,
      ...(options.prefix
        ? { store: new RedisStore({ url: redis.url }, options.prefix), storeKind: 'redis' as const }
        : {}),
    },
    ...(options.filter
      ? { config: (c) => ({ ...c, policy: { ...c.policy, sources: { graph: { filter: options.filter } } } }) }
      : {}),
  });
}

/** One incident of the selection fixture, updated at `at`. */
function incident(id: string, at: string) {
  const found = selection().value.find((i: { id: string }) => i.id === id);
  return { ...found, lastUpdateDateTime: at };
}

interface Seen {
  filter: string;
  prefer: string | undefined;
  url: string;
}

/** Graph answering each request with the next reply in turn; every request is recorded. */
function graphReplies(replies: [number, unknown][]): Seen[] {
  const seen: Seen[] = [];
  nock(GRAPH_ORIGIN)
    .get(INCIDENTS)
    .query(true)
    .times(replies.length)
    .reply(function (uri) {
      const query = new URL(uri, GRAPH_ORIGIN).searchParams;
      seen.push({
        filter: query.get('$filter') ?? '',
        prefer: this.req.headers.prefer as string | undefined,
        url: uri,
      });
      return replies[seen.length - 1] ?? [500, {}];
    });
  return seen;
}

const ids = async () =>
  (await bot.runtime.store.listIncidents(100)).map((i) => i.id).sort((a, b) => a.localeCompare(b));

describe('polling Graph security incidents (GRAPH_POLL_SECONDS)', () => {
  it('ingests every page, keeping the actions and summary already received', async () => {
    bot = await startWith();
    nockLogin();
    await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body: sampleIngestBody(shippedSample()) });
    const requests: { query: string; auth: string | undefined; prefer: string | undefined }[] = [];
    nock(GRAPH_ORIGIN)
      .get(INCIDENTS)
      .query(true)
      .times(2)
      .reply(function (uri) {
        requests.push({
          query: decodeURIComponent(uri.split('?')[1] ?? ''),
          auth: this.req.headers.authorization as string,
          prefer: this.req.headers.prefer as string | undefined,
        });
        return [200, uri.includes('$skip=50') ? page(2) : page(1)];
      });

    expect(await poller(60).pollOnce()).toBe(2);

    expect(requests[0]).toEqual({
      query: '$expand=alerts&$filter=lastUpdateDateTime ge 2026-11-27T09:58:00.000Z&$top=50',
      auth: `Bearer ${GRAPH_TOKEN}`,
      prefer: PREFER,
    });
    expect(requests).toHaveLength(2);
    // The next page too asks for the enum members added later (awaitingAction).
    expect(requests[1]?.prefer).toBe(PREFER);
    const known = (await send(`${bot.url}/api/incidents/48213`, { token: INGEST_TOKEN })).body;
    expect(known).toMatchObject({ severity: 'medium', summary: expect.stringContaining('Invoice_0314.exe') });
    expect(known.actions).toHaveLength(6);
    const polled = (await send(`${bot.url}/api/incidents/48214`, { token: INGEST_TOKEN })).body;
    expect(polled).toMatchObject({
      title: 'Password spray against the VPN',
      managedStatus: 'active',
      actions: [],
    });
  });

  it('polls again when asked again (one run per interval across replicas comes from the job scheduler)', async () => {
    bot = await startWith();
    nockLogin();
    const scope = nock(GRAPH_ORIGIN).get(INCIDENTS).query(true).times(2).reply(200, page(2));
    expect(await poller().pollOnce()).toBe(1);
    expect(await poller().pollOnce()).toBe(1);
    expect(scope.isDone()).toBe(true);
  });

  it('fails with the missing permission named when Graph answers 403', async () => {
    bot = await startWith();
    nockLogin();
    nock(GRAPH_ORIGIN)
      .get(INCIDENTS)
      .query(true)
      .reply(403, {
        error: {
          code: 'Forbidden',
          message: 'Missing application roles. API required roles: SecurityIncident.Read.All',
        },
      });
    await expect(poller().pollOnce()).rejects.toThrow(/403 Forbidden .*SecurityIncident\.Read\.All/);
  });
});

describe('the poll cursor', () => {
  it('reads from the last successful poll after an outage longer than two intervals', async () => {
    const outageClock = new ManualClock(new Date('2026-11-27T10:00:00Z'));
    const prefix = `${redis.prefix}cursor:`;
    bot = await startWith({ clock: outageClock, prefix });
    nockLogin();
    const outage: [number, unknown][] = [
      [503, { error: { code: 'ServiceUnavailable', message: 'Service unavailable' } }],
      // A poll whose first page arrives but whose second fails moves nothing either.
      [
        200,
        {
          value: [incident('48301', '2026-11-27T10:03:11.5533333Z')],
          '@odata.nextLink': `${GRAPH_URL}/v1.0/security/incidents?$skiptoken=p2`,
        },
      ],
      [503, { error: { code: 'ServiceUnavailable', message: 'Service unavailable' } }],
      [503, { error: { code: 'ServiceUnavailable', message: 'Service unavailable' } }],
    ];
    const seen = graphReplies([
      [200, { value: [incident('48301', '2026-11-27T09:59:30.12Z')] }],
      ...outage,
      [
        200,
        {
          value: [
            incident('48301', '2026-11-27T10:03:11.5533333Z'),
            incident('48302', '2026-11-27T10:04:40.1Z'),
          ],
        },
      ],
    ]);
    const graphPoller = poller(60);

    // 10:00: the first poll reads two intervals back and keeps the newest update it read.
    expect(await graphPoller.pollOnce()).toBe(1);
    expect(await bot.runtime.store.getCursor(GRAPH_POLL_CURSOR)).toBe('2026-11-27T09:59:30.120Z');
    // 10:01 to 10:03: Graph is down (one poll dies on its second page); the cursor stays.
    for (let i = 0; i < 3; i++) {
      outageClock.advance(MINUTE);
      await expect(graphPoller.pollOnce()).rejects.toThrow(/Microsoft Graph/);
      expect(await bot.runtime.store.getCursor(GRAPH_POLL_CURSOR)).toBe('2026-11-27T09:59:30.120Z');
    }
    // 10:10, seven intervals later: the window still starts at the last successful poll.
    outageClock.advance(7 * MINUTE);
    // A poller of a process started since: the cursor comes from the store, not from memory.
    const graphPollerAfterRestart = new IncidentPoller(
      bot.runtime,
      new GraphIncidentSource({ credential: testCredential(), graphApiUrl: GRAPH_URL, maxRetries: 0 }),
      60,
    );
    // 48302 carries no Defender Experts tag: read (it moves the cursor) but not ingested.
    expect(await graphPollerAfterRestart.poll()).toEqual({
      ingested: 1,
      skipped: 1,
      cursor: '2026-11-27T10:04:40.100Z',
      complete: true,
    });

    expect(seen.map((s) => s.filter)).toEqual([
      'lastUpdateDateTime ge 2026-11-27T09:58:00.000Z',
      'lastUpdateDateTime ge 2026-11-27T09:59:30.120Z',
      'lastUpdateDateTime ge 2026-11-27T09:59:30.120Z',
      '',
      'lastUpdateDateTime ge 2026-11-27T09:59:30.120Z',
      'lastUpdateDateTime ge 2026-11-27T09:59:30.120Z',
    ]);
    expect(seen.every((s) => s.prefer === PREFER)).toBe(true);
    const updated = await bot.runtime.store.getIncident('48301');
    expect(updated?.incident.id).toBe('48301');
    // The cursor is in Redis: another process on the same prefix reads it.
    const other = new RedisStore({ url: redis.url }, prefix);
    try {
      expect(await other.getCursor(GRAPH_POLL_CURSOR)).toBe('2026-11-27T10:04:40.100Z');
    } finally {
      await other.close();
    }
  });
});

describe('paging', () => {
  /** `count` pages of one Defender Experts incident each, linked by `@odata.nextLink`. */
  function pages(count: number): [number, unknown][] {
    return Array.from({ length: count }, (_, n) => {
      const minute = String(n % 60).padStart(2, '0');
      const one = { ...incident('48301', `2026-11-27T09:${minute}:00Z`), id: String(50_000 + n) };
      one.incidentWebUrl = `https://security.microsoft.com/incidents/${one.id}`;
      return [
        200,
        {
          value: [one],
          ...(n < count - 1
            ? { '@odata.nextLink': `${GRAPH_URL}/v1.0/security/incidents?$skiptoken=${n + 1}` }
            : {}),
        },
      ];
    });
  }

  it('follows every page, beyond the twenty the poll once stopped at without a word', async () => {
    const pagingClock = new ManualClock(new Date('2026-11-27T10:00:00Z'));
    bot = await startWith({ clock: pagingClock });
    nockLogin();
    const seen = graphReplies(pages(25));

    const result = await poller(3_600).poll();

    expect(result).toMatchObject({ ingested: 25, complete: true, cursor: '2026-11-27T09:24:00.000Z' });
    expect(seen).toHaveLength(25);
    expect(seen.slice(1).map((s) => s.url)).toEqual(
      Array.from({ length: 24 }, (_, n) => `/msgraph/v1.0/security/incidents?$skiptoken=${n + 1}`),
    );
    expect(seen.every((s) => s.prefer === PREFER)).toBe(true);
    expect(await ids()).toHaveLength(25);
  });

  it('says so when its page bound stops it, and keeps the cursor where it was', async () => {
    const pagingClock = new ManualClock(new Date('2026-11-27T10:00:00Z'));
    bot = await startWith({ clock: pagingClock });
    nockLogin();
    const seen = graphReplies(pages(5));
    const errors = vi.spyOn(bot.runtime.logger, 'error');

    const result = await poller(3_600, { maxPages: 3 }).poll();

    expect(seen).toHaveLength(3);
    expect(result).toMatchObject({ ingested: 3, complete: false, cursor: '2026-11-27T08:00:00.000Z' });
    expect(await bot.runtime.store.getCursor(GRAPH_POLL_CURSOR)).toBeNull();
    expect(errors).toHaveBeenCalledWith(
      expect.objectContaining({ pages: 3, read: 3 }),
      expect.stringContaining('page bound'),
    );
  });
});

describe('which incidents the policy selects (sources.graph.filter)', () => {
  it('by default takes only the incidents tagged for the managed service (Defender Experts)', async () => {
    bot = await startWith({ clock: new ManualClock(new Date('2026-11-27T10:10:00Z')) });
    nockLogin();
    const seen = graphReplies([[200, selection()]]);

    expect(await poller().poll()).toMatchObject({ ingested: 1, skipped: 3 });

    expect(seen[0]?.filter).toBe('lastUpdateDateTime ge 2026-11-27T10:08:00.000Z');
    expect(await ids()).toEqual(['48301']);
    // Sent with Prefer: include-unknown-enum-members, the status Defender Experts set arrives as such.
    expect((await bot.runtime.store.getIncident('48301'))?.incident).toMatchObject({
      status: 'awaitingAction',
    });
  });

  it('by tag: custom or system tags, without regard to case, filtered after reading (Graph cannot filter tags)', async () => {
    bot = await startWith({
      clock: new ManualClock(new Date('2026-11-27T10:10:00Z')),
      filter: { tags: ['contoso mdr', 'Defender Experts'] },
    });
    nockLogin();
    const seen = graphReplies([[200, selection()]]);

    expect(await poller().poll()).toMatchObject({ ingested: 2, skipped: 2 });

    expect(seen[0]?.filter).toBe('lastUpdateDateTime ge 2026-11-27T10:08:00.000Z');
    expect(await ids()).toEqual(['48301', '48302']);
  });

  it('by assignedTo: filtered by Graph, and checked again on what comes back', async () => {
    bot = await startWith({
      clock: new ManualClock(new Date('2026-11-27T10:10:00Z')),
      filter: { assignedTo: 'soc@contoso.com' },
    });
    nockLogin();
    // Graph applies the filter; the reply here also carries one it should not have, which is dropped.
    const reply = selection();
    reply.value = reply.value.filter((i: { assignedTo: string | null }) => i.assignedTo !== null);
    const seen = graphReplies([[200, reply]]);

    expect(await poller().poll()).toMatchObject({ ingested: 1, skipped: 1 });

    expect(seen[0]?.filter).toBe(
      "lastUpdateDateTime ge 2026-11-27T10:08:00.000Z and assignedTo eq 'soc@contoso.com'",
    );
    expect(await ids()).toEqual(['48303']);
  });

  it('by tag and owner together: both must hold, a quote in the owner is escaped for OData', async () => {
    bot = await startWith({
      clock: new ManualClock(new Date('2026-11-27T10:10:00Z')),
      filter: { tags: ['Lab'], assignedTo: "o'brien@contoso.com" },
    });
    nockLogin();
    const seen = graphReplies([[200, { value: [incident('48304', '2026-11-27T10:06:59.9Z')] }]]);

    expect(await poller().poll()).toMatchObject({ ingested: 0, skipped: 1 });
    expect(seen[0]?.filter).toBe(
      "lastUpdateDateTime ge 2026-11-27T10:08:00.000Z and assignedTo eq 'o''brien@contoso.com'",
    );
    expect(await ids()).toEqual([]);
  });

  it('refuses a policy whose filter would select every incident of the tenant', () => {
    expect(() => parsePolicy('sources:\n  graph:\n    filter: {}\n')).toThrow(/sources\.graph\.filter/);
    expect(() => parsePolicy('sources:\n  graph:\n    filter: {tags: []}\n')).toThrow(/tags/);
    expect(parsePolicy('sources:\n  graph:\n    filter: {tags: ["Defender Experts"]}\n').sources).toEqual({
      graph: { filter: { tags: ['Defender Experts'] } },
    });
  });
});
