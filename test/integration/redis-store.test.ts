import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../../adapters/redis-store.js';
import { measureApprovalRoundTrips } from '../../bench/approval-round-trips.js';
import { currentExclusions } from '../../core/change-exclusions.js';
import type { ActionRecord, ExclusionChanges } from '../../core/model.js';
import { TEST_POLICY } from '../support/core-harness.js';
import { deleteKeysWithPrefix, type TestRedis, useTestRedis } from '../support/redis.js';
import { PrivateRedisServer } from '../support/redis-server.js';
import { RoundTripProxy } from '../support/round-trip-proxy.js';
import { actionRecord, auditEntry, incidentRecord, moved } from '../support/store-fixtures.js';

const VIP_ADDED: ExclusionChanges = {
  version: 0,
  added: {
    devices: [{ rule: { tag: 'VIP' }, by: 'slack:U0ADMIN1', at: '2026-11-27T10:00:00.000Z' }],
    users: [],
  },
  removed: { devices: [], users: [] },
};

/** How long a condition may take to hold on a busy machine. */
const WAIT = { timeout: 5_000, interval: 20 };
let redis: TestRedis;
let next = 0;
const stores: RedisStore[] = [];

beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
});
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await redis?.cleanup();
});

/** A fresh key prefix for one test. */
function freshPrefix(): string {
  next += 1;
  return `${redis.prefix}${next}:`;
}

/** A store with a connection of its own, as one replica of the bot has. */
function replica(prefix: string): RedisStore {
  const store = new RedisStore({ url: redis.url }, prefix);
  stores.push(store);
  return store;
}

/** 10 incidents of 100 actions each, all in `state`. */
async function seed(store: RedisStore, state: ActionRecord['state']): Promise<ActionRecord[]> {
  const all: ActionRecord[] = [];
  for (let i = 0; i < 10; i += 1) {
    const incidentId = `${48_200 + i}`;
    const actions = Array.from({ length: 100 }, (_, n) =>
      actionRecord(incidentId, `act-${n}`, {
        state,
        ...(state === 'customerPending' ? { excludedBy: 'tag VIP' } : {}),
      }),
    );
    await store.upsertIncident(incidentRecord(incidentId), actions, []);
    all.push(...actions);
  }
  return all;
}

/** Both replicas try the same transition of every action at the same moment; returns who won each. */
async function race(a: RedisStore, b: RedisStore, actions: ActionRecord[], to: ActionRecord['state']) {
  const winners: string[] = [];
  for (let start = 0; start < actions.length; start += 50) {
    const batch = actions.slice(start, start + 50);
    const rounds = await Promise.all(
      batch.map(async (action) => {
        const attempt = (store: RedisStore, who: string) =>
          store.compareAndSet(
            moved(action, to, { decidedBy: who, ...(to === 'doneByCustomer' ? { doneBy: who } : {}) }),
            action.version,
            auditEntry(to, { incidentId: action.incidentId, actionId: action.id }, { actor: who }),
          );
        const [ra, rb] = await Promise.all([attempt(a, 'replica-a'), attempt(b, 'replica-b')]);
        return { action, ra, rb };
      }),
    );
    for (const { action, ra, rb } of rounds) {
      const wins = [ra, rb].filter((r) => r.ok);
      expect(wins, `${action.incidentId}:${action.id}`).toHaveLength(1);
      const win = wins[0];
      const lose = [ra, rb].find((r) => !r.ok);
      if (win?.ok && lose && !lose.ok) {
        expect(lose.current).toEqual(win.action);
        winners.push(win.action.decidedBy ?? '');
      }
    }
  }
  return winners;
}

describe('RedisStore shared by two replicas', () => {
  it('lets exactly one of two replicas approve each of 1,000 actions', async () => {
    const prefix = freshPrefix();
    const [a, b] = [replica(prefix), replica(prefix)];
    const actions = await seed(a, 'proposed');

    const winners = await race(a, b, actions, 'approved');

    expect(winners).toHaveLength(1_000);
    const stored = await Promise.all(actions.map((x) => b.getAction(x.incidentId, x.id)));
    expect(stored.every((s) => s?.state === 'approved' && s.version === 2)).toBe(true);
    expect(stored.map((s) => s?.decidedBy)).toEqual(winners);
    for (let i = 0; i < 10; i += 1) expect(await a.listAudit(`${48_200 + i}`)).toHaveLength(100);
  });

  it('lets exactly one of two replicas mark each of 1,000 tasks done, and lists each once', async () => {
    const prefix = freshPrefix();
    const [a, b] = [replica(prefix), replica(prefix)];
    const actions = await seed(a, 'customerPending');
    expect(await b.listTasks('pending', 2_000)).toHaveLength(1_000);

    const winners = await race(a, b, actions, 'doneByCustomer');

    expect(winners).toHaveLength(1_000);
    expect(await a.listTasks('pending', 2_000)).toEqual([]);
    const done = await b.listTasks('done', 2_000);
    expect(done.map((t) => t.id).sort()).toEqual(actions.map((x) => `${x.incidentId}:${x.id}`).sort());
    expect(done.map((t) => t.doneBy).sort()).toEqual([...winners].sort());
  });
});

describe('RedisStore across a restart', () => {
  it('reads back, through a new instance, everything written through a closed one', async () => {
    const prefix = freshPrefix();
    const first = new RedisStore({ url: redis.url }, prefix);
    const pending = actionRecord('1', 'act-3', {
      type: 'softDeleteEmails',
      state: 'customerPending',
      excludedBy: 'user group Executives',
    });
    const proposed = actionRecord('1', 'act-1');
    await first.upsertIncident(
      incidentRecord('1'),
      [proposed, pending, actionRecord('1', 'act-4')],
      [auditEntry('ingest', { incidentId: '1' })],
    );
    await first.compareAndSet(
      moved(proposed, 'approved', { decidedBy: 'slack:U0EXPERT1' }),
      1,
      auditEntry('approve', { incidentId: '1', actionId: 'act-1' }),
    );
    await first.compareAndSet(
      moved(actionRecord('1', 'act-4'), 'customerPending', { excludedBy: 'tag VIP' }),
      1,
      auditEntry('approve', { incidentId: '1', actionId: 'act-4' }),
    );
    await first.compareAndSet(
      moved(pending, 'doneByCustomer', { doneBy: 'api:itsm', doneAt: '2026-11-27T12:00:00.000Z' }),
      1,
      auditEntry('markDone', { incidentId: '1', actionId: 'act-3' }),
    );
    await first.setCardRefs('1', { slack: { channel: 'C0SOC', ts: '1.2' } });
    await first.saveConversation('19:abc@thread.tacv2', { serviceUrl: 'https://smba.trafficmanager.net/' });
    await first.saveExclusionChanges(VIP_ADDED, 0, auditEntry('exclude'));
    const before = await first.getIncident('1');
    await first.close();

    const second = replica(prefix);

    expect(await second.getIncident('1')).toEqual(before);
    expect((await second.getAction('1', 'act-1'))?.state).toBe('approved');
    expect((await second.listTasks('pending')).map((t) => t.id)).toEqual(['1:act-4']);
    expect((await second.listTasks('done')).map((t) => [t.id, t.doneBy])).toEqual([['1:act-3', 'api:itsm']]);
    expect(await second.getCardRefs('1')).toEqual({ slack: { channel: 'C0SOC', ts: '1.2' } });
    expect(await second.listConversations()).toEqual([
      {
        conversationId: '19:abc@thread.tacv2',
        reference: { serviceUrl: 'https://smba.trafficmanager.net/' },
      },
    ]);
    expect(await second.getExclusionChanges()).toEqual({ ...VIP_ADDED, version: 1 });
    expect((await second.listAudit('1')).map((e) => e.event)).toEqual([
      'ingest',
      'approve',
      'approve',
      'markDone',
    ]);
    expect((await second.listAudit()).map((e) => e.event)).toEqual(['exclude']);
    expect((await second.listIncidents(10)).map((i) => i.id)).toEqual(['1']);
  });
});

describe('RedisStore task index', () => {
  it('shows the right lists when the index update after a write was lost, and repairs it', async () => {
    const prefix = freshPrefix();
    const store = replica(prefix);
    const raw = redis.client();
    const done = actionRecord('1', 'done', { state: 'customerPending', excludedBy: 'tag VIP' });
    await store.upsertIncident(
      incidentRecord('1'),
      [done, actionRecord('1', 'approved'), actionRecord('1', 'rejected')],
      [],
    );
    await store.compareAndSet(
      moved(done, 'doneByCustomer', { doneBy: 'slack:U0CUST' }),
      1,
      auditEntry('markDone', { incidentId: '1', actionId: 'done' }),
    );
    await store.compareAndSet(
      moved(actionRecord('1', 'rejected'), 'rejected'),
      1,
      auditEntry('reject', { incidentId: '1', actionId: 'rejected' }),
    );
    // As if the process died between the script and the index: `done` is still filed as pending, and
    // stale entries name actions that are no tasks at all.
    await raw.zrem(`${prefix}tasks:done`, '1:done');
    await raw.zadd(`${prefix}tasks:pending`, 1, '1:approved', 2, '1:rejected', 3, '1:missing', 4, 'garbage');

    expect(await store.listTasks('pending')).toEqual([]);
    expect((await store.listTasks('done')).map((t) => t.id)).toEqual(['1:done']);
    // Read again (after the repair on read) and from another replica: the same lists.
    for (const reader of [store, replica(prefix)]) {
      expect(await reader.listTasks('pending')).toEqual([]);
      expect((await reader.listTasks('done')).map((t) => t.id)).toEqual(['1:done']);
    }
  });
});

describe('RedisStore execution phase indexes', () => {
  it('keeps entries an action may still match and drops the others when read', async () => {
    const prefix = freshPrefix();
    const store = replica(prefix);
    const raw = redis.client();
    const ended = actionRecord('1', 'ended');
    const waiting = actionRecord('1', 'waiting');
    const failed = actionRecord('1', 'failed');
    await store.upsertIncident(incidentRecord('1'), [ended, waiting, failed], []);
    for (const [action, end] of [
      [ended, 'succeeded'],
      [failed, 'failed'],
    ] as const) {
      const approved = moved(action, 'approved');
      await store.compareAndSet(approved, 1, auditEntry('approve', { incidentId: '1', actionId: action.id }));
      await store.compareAndSet(
        moved(approved, end),
        2,
        auditEntry('execute', { incidentId: '1', actionId: action.id }),
      );
    }
    // A lost writer's entry ahead of its action (still proposed), one for an action that ended, and junk.
    await raw.zadd(`${prefix}exec:approved`, 5, '1:waiting', 6, '1:missing', 7, 'garbage');

    expect(await store.listActionsIn('approved')).toEqual([]);
    // The lost writer's action is approved after all, and the failed one retried (approved again):
    // both are found, once each, whatever entries were ahead of them.
    await store.compareAndSet(
      moved(waiting, 'approved'),
      1,
      auditEntry('approve', { incidentId: '1', actionId: 'waiting' }),
    );
    const retried = moved(moved(moved(failed, 'approved'), 'failed'), 'approved');
    await store.compareAndSet(retried, 3, auditEntry('retry', { incidentId: '1', actionId: 'failed' }));
    expect((await store.listActionsIn('approved')).map((a) => a.id).sort()).toEqual(['failed', 'waiting']);
  });
});

/** The part of a key Redis Cluster hashes (its first non-empty `{...}`), or the whole key. */
function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

describe('RedisStore keys', () => {
  it('keeps everything under its prefix: with those keys deleted, the store holds nothing', async () => {
    const prefix = freshPrefix();
    const store = replica(prefix);
    const raw = redis.client();
    const id = `9${Math.floor(Math.random() * 1e8)}`;
    const action = actionRecord(id, 'act-1', { state: 'customerPending', excludedBy: 'tag VIP' });
    await store.upsertIncident(incidentRecord(id), [action], [auditEntry('ingest', { incidentId: id })]);
    await store.compareAndSet(
      moved(action, 'doneByCustomer'),
      1,
      auditEntry('markDone', { incidentId: id, actionId: 'act-1' }),
    );
    await store.setCardRefs(id, { slack: { channel: 'C0SOC', ts: '1.2' } });
    await store.saveExclusionChanges(VIP_ADDED, 0, auditEntry('exclude'));
    await store.saveConversation('c', {});
    expect(await store.tryLock(`deliver:slack:${id}`, 60_000)).toBe(true);

    // Nothing that names the incident lives outside the prefix.
    const naming = await raw.keys(`*${id}*`);
    expect(naming.length).toBeGreaterThan(0);
    expect(naming.filter((k) => !k.startsWith(prefix))).toEqual([]);
    // Every key of one incident hashes to one Redis Cluster slot (its scripts touch them together).
    const perIncident = naming.filter((k) => !k.includes('lock'));
    expect(new Set(perIncident.map(hashTagOf)).size).toBe(1);

    await deleteKeysWithPrefix(raw, prefix);
    const fresh = replica(prefix);
    expect(await fresh.getIncident(id)).toBeNull();
    expect(await fresh.listIncidents(10)).toEqual([]);
    expect(await fresh.listTasks('pending')).toEqual([]);
    expect(await fresh.listTasks('done')).toEqual([]);
    expect(await fresh.getCardRefs(id)).toEqual({});
    expect(await fresh.listConversations()).toEqual([]);
    expect(await fresh.listAudit()).toEqual([]);
    expect(await fresh.listAuditFeed(null, 10)).toEqual([]);
    expect(await fresh.getExclusionChanges()).toMatchObject({ version: 0 });
    expect(await fresh.tryLock(`deliver:slack:${id}`, 60_000)).toBe(true);
  });
});

describe('RedisStore exclusions kept by an earlier version', () => {
  it('reads the whole list stored in place of the policy file as changes, and replaces it at the first change', async () => {
    const prefix = freshPrefix();
    const store = replica(prefix);
    const raw = redis.client();
    const legacy = { devices: [{ tag: 'VIP' }], users: [] };
    await raw.set(`${prefix}exclusions`, JSON.stringify(legacy));
    const policy = { ...TEST_POLICY, exclusions: { devices: [{ group: 'Finance-Servers' }], users: [] } };

    expect(await store.getExclusionChanges()).toMatchObject({ version: 0, legacy });
    expect(await currentExclusions({ store, policy })).toEqual({
      devices: [{ tag: 'VIP', source: 'added by a run-time change kept by an earlier version of the bot' }],
      users: [],
    });
    expect(await store.saveExclusionChanges({ ...VIP_ADDED, legacy }, 0, auditEntry('exclude'))).toBe(true);

    expect(await store.getExclusionChanges()).toEqual({ ...VIP_ADDED, version: 1 });
    // Read by another replica: the earlier version's list is gone, only the changes are left.
    expect(await replica(prefix).getExclusionChanges()).toEqual({ ...VIP_ADDED, version: 1 });
  });
});

describe("an incident's actions read by two replicas", () => {
  it('keep their order, read once while no action is added, and again once another replica added one', async () => {
    const prefix = freshPrefix();
    const proxy = await RoundTripProxy.start(redis.url);
    const other = replica(prefix);
    const measured = new RedisStore({ url: `${proxy.url}${new URL(redis.url).pathname}` }, prefix);
    stores.push(measured);
    const ids = ['act-3', 'act-1', 'act-2'];
    await other.upsertIncident(
      incidentRecord('1'),
      ids.map((id) => actionRecord('1', id)),
      [],
    );
    // Connected and through its ready check (an INFO) before any read is counted.
    await measured.ping();
    const read = async () => {
      proxy.reset();
      const state = await measured.getIncident('1');
      return { ids: state?.actions.map((a) => a.id), commands: proxy.commands().map((c) => c.toLowerCase()) };
    };

    expect(await read()).toEqual({ ids, commands: ['get', 'hgetall', 'lrange'] });
    expect(await read()).toEqual({ ids, commands: ['get', 'hgetall'] });
    await other.upsertIncident(incidentRecord('1'), [actionRecord('1', 'act-0')], []);
    expect(await read()).toEqual({ ids: [...ids, 'act-0'], commands: ['get', 'hgetall', 'lrange'] });
    // Its own ingest adds to the order it knows.
    await measured.upsertIncident(incidentRecord('1'), [actionRecord('1', 'act-9')], []);
    expect(await read()).toEqual({ ids: [...ids, 'act-0', 'act-9'], commands: ['get', 'hgetall'] });
    await measured.close();
    await proxy.close();
  });
});

describe('the phase index of an action written again in the same phase', () => {
  it('is not written again, and still lists the action', async () => {
    const prefix = freshPrefix();
    const proxy = await RoundTripProxy.start(redis.url);
    const store = new RedisStore({ url: `${proxy.url}${new URL(redis.url).pathname}` }, prefix);
    stores.push(store);
    await store.upsertIncident(incidentRecord('1'), [actionRecord('1', 'act-1')], []);
    const ref = { incidentId: '1', actionId: 'act-1' };
    const submitted = moved(actionRecord('1', 'act-1'), 'executing', {
      externalId: 'ma-1',
      submittedAt: '2026-11-27T10:00:00.000Z',
      remoteStatus: 'Pending',
    });
    await store.compareAndSet(submitted, 1, auditEntry('progress', ref), actionRecord('1', 'act-1'));
    proxy.reset();

    const progress = moved(submitted, 'executing', { remoteStatus: 'InProgress' });
    await store.compareAndSet(progress, 2, auditEntry('progress', ref), submitted);

    expect(proxy.commands().map((c) => c.toLowerCase())).toEqual(['evalsha']);
    expect(await store.listActionsIn('submitted')).toMatchObject([
      { id: 'act-1', remoteStatus: 'InProgress' },
    ]);
    await store.close();
    await proxy.close();
  });
});

describe('the stored Teams conversations of two replicas', () => {
  it("are read from Redis once, then from the process, until another replica's change is announced", async () => {
    const prefix = freshPrefix();
    const proxy = await RoundTripProxy.start(redis.url);
    const a = replica(prefix);
    const measured = new RedisStore({ url: `${proxy.url}${new URL(redis.url).pathname}` }, prefix);
    stores.push(measured);
    const channel = { conversation: { id: '19:soc@thread.tacv2', conversationType: 'channel' } };
    await a.saveConversation('19:soc@thread.tacv2', channel);
    const readsFromRedis = async () => {
      proxy.reset();
      await measured.listConversations();
      return proxy.commands().map((c) => c.toLowerCase());
    };
    // Subscribed to the announcements (on a connection of its own), it keeps what it read.
    await expect.poll(readsFromRedis, { timeout: 5_000, interval: 20 }).toEqual([]);

    const other = { conversation: { id: '19:ops@thread.tacv2', conversationType: 'channel' } };
    await a.saveConversation('19:ops@thread.tacv2', other);
    const byId = async () =>
      (await measured.listConversations()).sort((x, y) => x.conversationId.localeCompare(y.conversationId));
    await expect.poll(byId, { timeout: 5_000, interval: 20 }).toEqual([
      { conversationId: '19:ops@thread.tacv2', reference: other },
      { conversationId: '19:soc@thread.tacv2', reference: channel },
    ]);
    await a.removeConversation('19:soc@thread.tacv2');
    await expect
      .poll(() => measured.listConversations(), { timeout: 5_000, interval: 20 })
      .toEqual([{ conversationId: '19:ops@thread.tacv2', reference: other }]);
    // Its own change is seen at once, before its announcement comes back.
    await measured.removeConversation('19:ops@thread.tacv2');
    expect(await measured.listConversations()).toEqual([]);
    await measured.close();
    await proxy.close();
  });

  it('are read from Redis again after the announcements may have been missed (the subscription dropped)', async () => {
    const server = await PrivateRedisServer.start();
    const [a, b] = [new RedisStore({ url: server.url }, 'mdr:'), new RedisStore({ url: server.url }, 'mdr:')];
    const admin = new Redis(server.url);
    try {
      const channel = { conversation: { id: '19:soc@thread.tacv2', conversationType: 'channel' } };
      await b.saveConversation('19:soc@thread.tacv2', channel);
      await a.listConversations();
      await expect
        .poll(async () => (await admin.pubsub('NUMSUB', 'mdr:teams:conversations:changed'))[1], WAIT)
        .toBe(1);
      const stored = [{ conversationId: '19:soc@thread.tacv2', reference: channel }];
      expect(await a.listConversations()).toEqual(stored);
      // A change whose announcement A misses: A goes on with what it read.
      await admin.hdel('mdr:teams:conversations', '19:soc@thread.tacv2');
      expect(await a.listConversations()).toEqual(stored);

      // Its subscription dropped (announcements may have been missed), it reads Redis again.
      await admin.client('KILL', 'TYPE', 'pubsub');

      await expect.poll(() => a.listConversations(), WAIT).toEqual([]);
    } finally {
      admin.disconnect();
      await Promise.all([a.close(), b.close()]);
      await server.stop();
    }
  });
});

describe('approval round trips', () => {
  it('takes at most 3 round trips to Redis before an approval is acknowledged', async () => {
    const result = await measureApprovalRoundTrips(redis.url, freshPrefix());

    expect(result).toMatchObject({ loadForDecision: 1, compareAndSet: 1, enqueue: 1, total: 3 });
    expect(result.approveAction).toBeLessThanOrEqual(3);
    expect(result.approveActionBothPlatforms).toBeLessThanOrEqual(3);
  });
});
