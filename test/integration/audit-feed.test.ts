import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../adapters/memory-store.js';
import { RedisStore } from '../../adapters/redis-store.js';
import type { AuditEntry } from '../../core/model.js';
import type { ActionStore } from '../../core/ports.js';
import { ADMIN_TOKEN, type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';

let redis: TestRedis;
const bots: BotServer[] = [];

beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
});
afterAll(async () => {
  await redis.cleanup();
});
afterEach(async () => {
  for (const bot of bots.splice(0)) await bot.close();
});

/** Each store, and the same with a feed bound of `feedMaxLen` lines (approximate on Redis). */
const stores: [string, (feedMaxLen?: number) => ActionStore][] = [
  ['memory', (feedMaxLen) => new MemoryStore(feedMaxLen)],
  [
    'redis',
    (feedMaxLen) =>
      new RedisStore(
        { url: redis.url },
        `${redis.prefix}${Math.random().toString(16).slice(2, 8)}:`,
        feedMaxLen ? { auditFeedMaxLen: feedMaxLen } : {},
      ),
  ],
];

/** A policy audit entry (no incident) numbered `n`. */
function auditEntry(event: string, n: number): AuditEntry {
  return {
    at: new Date().toISOString(),
    actor: 'admin:token',
    platform: 'api',
    event,
    outcome: 'ok',
    detail: `entry ${n}`,
  };
}

function incident(id: string) {
  const body = sampleIngestBody(shippedSample());
  body.incident.id = id;
  body.incident.incidentWebUrl = `https://security.microsoft.com/incidents/${id}`;
  return body;
}

/** GET /api/audit as a SIEM collector reads it: raw NDJSON, parsed line by line. */
async function page(bot: BotServer, query: string, token = INGEST_TOKEN) {
  const res = await fetch(`${bot.url}/api/audit${query}`, { headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return {
    status: res.status,
    type: res.headers.get('content-type'),
    next: res.headers.get('x-next-cursor'),
    gap: res.headers.get('x-cursor-gap'),
    text,
    lines: res.ok
      ? text
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l))
      : [],
  };
}

describe.each(stores)('GET /api/audit on the %s store', (_name, makeStore) => {
  it('pages through every incident’s audit entries, oldest first, resuming after the cursor', async () => {
    const bot = await startBot({ parts: { store: makeStore() } });
    bots.push(bot);
    for (const id of ['48213', '48214']) {
      expect(
        (await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body: incident(id) })).status,
      ).toBe(201);
    }
    const done = await send(`${bot.url}/api/incidents/48213`, { token: INGEST_TOKEN });
    const trail = async (id: string) =>
      (await send(`${bot.url}/api/incidents/${id}/audit`, { token: INGEST_TOKEN })).body.entries;
    const expected = [...(await trail('48213')), ...(await trail('48214'))];
    expect(done.status).toBe(200);
    expect(expected.length).toBeGreaterThan(6);

    const seen: any[] = [];
    let since = '';
    let pages = 0;
    for (;;) {
      const p = await page(bot, `?limit=3${since ? `&since=${since}` : ''}`);
      expect(p.status).toBe(200);
      expect(p.type).toMatch(/^application\/x-ndjson/);
      if (p.lines.length === 0) {
        expect(p.next).toBe(since);
        break;
      }
      expect(p.lines.length).toBeLessThanOrEqual(3);
      expect(p.next).toBe(p.lines.at(-1).cursor);
      seen.push(...p.lines);
      since = p.next as string;
      pages += 1;
    }

    expect(pages).toBe(Math.ceil(expected.length / 3));
    expect(seen.map(({ cursor: _c, ...entry }) => entry)).toEqual(expected);
    expect(new Set(seen.map((l) => l.cursor)).size).toBe(seen.length);
    expect(new Set(seen.map((l) => l.incidentId))).toEqual(new Set(['48213', '48214']));

    // A later change shows up after the cursor the collector kept, and nothing before it comes again.
    const marked = await send(`${bot.url}/api/tasks/48213:act-5/done`, {
      token: INGEST_TOKEN,
      body: { by: 'Dana' },
    });
    expect(marked.status).toBe(200);
    const later = await page(bot, `?since=${since}`, ADMIN_TOKEN);
    expect(later.lines).toEqual([
      expect.objectContaining({ incidentId: '48213', actionId: 'act-5', event: 'markDone', outcome: 'ok' }),
    ]);
    expect(later.next).toBe(later.lines[0].cursor);
  });

  it('tells a collector whose cursor is older than the oldest entry kept that entries were dropped', async () => {
    const bot = await startBot({ parts: { store: makeStore(10) } });
    bots.push(bot);
    const store = bot.runtime.store;
    await store.appendAudit(auditEntry('exclude', 0));
    const [kept] = (await page(bot, '?limit=1')).lines;
    expect((await page(bot, `?since=${kept.cursor}`)).gap).toBe('false');
    // Enough entries for the bound to drop the oldest (Redis trims whole stream nodes of 100).
    for (let i = 1; i <= 250; i += 1) await store.appendAudit(auditEntry('exclude', i));

    const behind = await page(bot, `?since=${kept.cursor}&limit=1000`);
    expect(behind.status).toBe(200);
    expect(behind.gap).toBe('true');
    // The page starts at the oldest entry kept, the dropped ones are gone.
    expect(behind.lines[0].detail).not.toBe('entry 1');
    expect(behind.lines.at(-1).detail).toBe('entry 250');
    const oldest = behind.lines[0].cursor;
    expect((await page(bot, `?since=${oldest}`)).gap).toBe('false');
    expect((await page(bot, '')).gap).toBe('false');
  });

  it('says no gap for any cursor while nothing was dropped', async () => {
    const bot = await startBot({ parts: { store: makeStore() } });
    bots.push(bot);
    await bot.runtime.store.appendAudit(auditEntry('exclude', 1));
    const res = await page(bot, '?since=1-0');
    expect(res.gap).toBe('false');
    expect(res.lines.map((l) => l.detail)).toEqual(['entry 1']);
  });

  it('refuses a bad cursor or limit with a 400 naming the field, and a missing token with a 401', async () => {
    const bot = await startBot({ parts: { store: makeStore() } });
    bots.push(bot);

    for (const query of [
      '?since=yesterday',
      '?since=1-2-3',
      '?limit=0',
      '?limit=1001',
      '?limit=ten',
      '?since=1-0&since=2-0',
    ]) {
      const res = await send(`${bot.url}/api/audit${query}`, { token: INGEST_TOKEN });
      expect(res.status, query).toBe(400);
      expect(res.body.error.code).toBe('invalid_body');
      expect(res.body.error.message).toMatch(/query\.(since|limit)/);
    }
    const anonymous = await send(`${bot.url}/api/audit`);
    expect(anonymous.status).toBe(401);
  });
});
