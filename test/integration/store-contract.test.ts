import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../../adapters/memory-store.js';
import { createRedisCluster, RedisStore } from '../../adapters/redis-store.js';
import type { ActionRecord, ExclusionChanges } from '../../core/model.js';
import type { ActionStore, ActionsWritten } from '../../core/ports.js';
import { factsOf } from '../../core/webhook-events.js';
import { PrivateRedisServer, type TestRedis, useTestRedis } from '../support/redis.js';
import { actionRecord, auditEntry, incidentRecord, moved } from '../support/store-fixtures.js';

const NO_CHANGES: ExclusionChanges = {
  version: 0,
  added: { devices: [], users: [] },
  removed: { devices: [], users: [] },
};

/** Run-time changes that add the device tag VIP (as saved from version 0). */
function vipAdded(): ExclusionChanges {
  return {
    version: 0,
    added: {
      devices: [{ rule: { tag: 'VIP' }, by: 'slack:U0ADMIN1', at: '2026-11-27T10:00:00.000Z' }],
      users: [],
    },
    removed: { devices: [], users: [] },
  };
}

/** Makes an empty store for one test, and disposes of it. */
interface StoreFactory {
  create(): Promise<ActionStore>;
  dispose(store: ActionStore): Promise<void>;
}

/** The behaviour every ActionStore must have: run against each implementation. */
function storeContract(name: string, factory: () => StoreFactory) {
  describe(`${name} (ActionStore contract)`, () => {
    let store: ActionStore;
    beforeEach(async () => {
      const f = factory();
      store = await f.create();
      return () => f.dispose(store);
    });

    it('creates an incident once and keeps the state of known actions when it comes again', async () => {
      const first = await store.upsertIncident(
        incidentRecord('1'),
        [actionRecord('1', 'act-1'), actionRecord('1', 'act-2')],
        [],
      );
      const approved = await store.compareAndSet(
        moved(actionRecord('1', 'act-1'), 'approved', { decidedBy: 'slack:U0EXPERT1' }),
        1,
        auditEntry('approve', { incidentId: '1', actionId: 'act-1' }),
      );
      const again = await store.upsertIncident(
        incidentRecord('1', { title: 'renamed' }),
        [actionRecord('1', 'act-1'), actionRecord('1', 'act-3', { type: 'disableUser' })],
        [],
      );

      expect(first.created).toBe(true);
      expect(first.added.map((a) => a.id)).toEqual(['act-1', 'act-2']);
      expect(approved.ok).toBe(true);
      expect(again.created).toBe(false);
      expect(again.added.map((a) => a.id)).toEqual(['act-3']);
      const state = await store.getIncident('1');
      expect(state?.incident.title).toBe('renamed');
      expect(state?.actions.map((a) => [a.id, a.state, a.version])).toEqual([
        ['act-1', 'approved', 2],
        ['act-2', 'proposed', 1],
        ['act-3', 'proposed', 1],
      ]);
    });

    it('audits an upsert only for the actions it added and for entries about the incident itself', async () => {
      await store.upsertIncident(
        incidentRecord('2'),
        [actionRecord('2', 'a')],
        [
          auditEntry('received', { incidentId: '2' }),
          auditEntry('ingest', { incidentId: '2', actionId: 'a' }),
        ],
      );
      await store.upsertIncident(
        incidentRecord('2'),
        [actionRecord('2', 'a'), actionRecord('2', 'b')],
        [
          auditEntry('ingest', { incidentId: '2', actionId: 'a' }),
          auditEntry('ingest', { incidentId: '2', actionId: 'b' }),
        ],
      );

      const audit = await store.listAudit('2');
      expect(audit.map((e) => [e.event, e.actionId])).toEqual([
        ['received', undefined],
        ['ingest', 'a'],
        ['ingest', 'b'],
      ]);
    });

    it('returns null for an unknown incident or action', async () => {
      await store.upsertIncident(incidentRecord('3'), [actionRecord('3', 'a')], []);

      expect(await store.getIncident('nope')).toBeNull();
      expect(await store.getAction('3', 'nope')).toBeNull();
      expect(await store.loadForDecision('3', 'nope')).toBeNull();
      expect(await store.loadForDecision('nope', 'a')).toBeNull();
    });

    it('loads incident, action and run-time exclusion changes for a decision', async () => {
      await store.upsertIncident(incidentRecord('4'), [actionRecord('4', 'a')], []);
      const before = await store.loadForDecision('4', 'a');
      await store.saveExclusionChanges(vipAdded(), 0, auditEntry('exclude'));
      const after = await store.loadForDecision('4', 'a');

      expect(before).toEqual({
        incident: incidentRecord('4'),
        action: actionRecord('4', 'a'),
        exclusionChanges: NO_CHANGES,
      });
      expect(after?.exclusionChanges).toEqual({ ...vipAdded(), version: 1 });
    });

    it('lets one compare-and-set win and shows the loser what is there now', async () => {
      const action = actionRecord('5', 'a');
      await store.upsertIncident(incidentRecord('5'), [action], []);

      const win = await store.compareAndSet(
        moved(action, 'approved', { decidedBy: 'slack:U1' }),
        1,
        auditEntry('approve', { incidentId: '5', actionId: 'a' }),
      );
      const lose = await store.compareAndSet(
        moved(action, 'rejected', { decidedBy: 'slack:U2' }),
        1,
        auditEntry('reject', { incidentId: '5', actionId: 'a' }),
      );
      const unknown = await store.compareAndSet(
        moved(actionRecord('5', 'zz'), 'approved'),
        1,
        auditEntry('approve', { incidentId: '5', actionId: 'zz' }),
      );

      expect(win).toEqual({
        ok: true,
        action: { ...action, state: 'approved', decidedBy: 'slack:U1', version: 2 },
      });
      expect(lose).toEqual({
        ok: false,
        current: { ...action, state: 'approved', decidedBy: 'slack:U1', version: 2 },
      });
      expect(unknown).toEqual({ ok: false, current: null });
      expect((await store.getAction('5', 'a'))?.state).toBe('approved');
      expect((await store.listAudit('5')).map((e) => e.event)).toEqual(['approve']);
    });

    it('stores the version as expectedVersion + 1', async () => {
      const action = actionRecord('6', 'a');
      await store.upsertIncident(incidentRecord('6'), [action], []);

      const result = await store.compareAndSet(
        { ...action, state: 'approved', version: 99 },
        1,
        auditEntry('approve', { incidentId: '6', actionId: 'a' }),
      );

      expect(result.ok && result.action.version).toBe(2);
      expect((await store.getAction('6', 'a'))?.version).toBe(2);
    });

    it('keeps refusals and policy changes in the audit trail, oldest first, the last `limit`', async () => {
      await store.upsertIncident(incidentRecord('7'), [actionRecord('7', 'a')], []);
      await store.appendAudit(
        auditEntry(
          'approve',
          { incidentId: '7', actionId: 'a' },
          { outcome: 'refused', detail: 'not_expert' },
        ),
      );
      await store.appendAudit(
        auditEntry('approve', { incidentId: '7', actionId: 'a' }, { detail: 'second' }),
      );
      await store.appendAudit(auditEntry('approve', { incidentId: '7', actionId: 'a' }, { detail: 'third' }));
      await store.saveExclusionChanges(vipAdded(), 0, auditEntry('exclude'));
      await store.appendAudit(auditEntry('unexclude', {}, { outcome: 'refused', detail: 'not_admin' }));

      const incident = await store.listAudit('7');
      expect(incident[0]).toEqual(
        auditEntry(
          'approve',
          { incidentId: '7', actionId: 'a' },
          { outcome: 'refused', detail: 'not_expert' },
        ),
      );
      expect((await store.listAudit('7', 2)).map((e) => e.detail)).toEqual(['second', 'third']);
      expect((await store.listAudit()).map((e) => [e.event, e.outcome])).toEqual([
        ['exclude', 'ok'],
        ['unexclude', 'refused'],
      ]);
      expect(await store.listAudit('unknown')).toEqual([]);
    });

    it('lists customer tasks in creation order and moves them from pending to done', async () => {
      await store.upsertIncident(
        incidentRecord('8'),
        [
          actionRecord('8', 'a', { state: 'customerPending', excludedBy: 'device tag VIP' }),
          actionRecord('8', 'b'),
        ],
        [],
      );
      await store.upsertIncident(
        incidentRecord('9'),
        [actionRecord('9', 'c', { state: 'customerPending', excludedBy: 'user ceo@contoso.com' })],
        [],
      );
      const b = actionRecord('8', 'b');
      await store.compareAndSet(
        moved(b, 'customerPending', { excludedBy: 'device group DC' }),
        1,
        auditEntry('approve', { incidentId: '8', actionId: 'b' }, { outcome: 'refused' }),
      );

      const pending = await store.listTasks('pending');
      expect(pending.map((t) => t.id)).toEqual(['8:a', '9:c', '8:b']);
      expect(pending[0]).toMatchObject({
        incidentId: '8',
        actionId: 'a',
        type: 'isolateDevice',
        state: 'pending',
        excludedBy: 'device tag VIP',
      });
      expect(pending[0]?.guidance).toMatch(/Isolate device/);
      expect((await store.listTasks('pending', 2)).map((t) => t.id)).toEqual(['8:a', '9:c']);

      const c = actionRecord('9', 'c', { state: 'customerPending', excludedBy: 'user ceo@contoso.com' });
      const done = await store.compareAndSet(
        moved(c, 'doneByCustomer', { doneBy: 'slack:U0CUST', doneAt: '2026-11-27T11:00:00.000Z' }),
        1,
        auditEntry('markDone', { incidentId: '9', actionId: 'c' }),
      );
      const a = actionRecord('8', 'a', { state: 'customerPending', excludedBy: 'device tag VIP' });
      await store.compareAndSet(
        moved(a, 'doneByCustomer', { doneBy: 'api:itsm', doneAt: '2026-11-27T11:05:00.000Z' }),
        1,
        auditEntry('markDone', { incidentId: '8', actionId: 'a' }),
      );

      expect(done.ok).toBe(true);
      expect((await store.listTasks('pending')).map((t) => t.id)).toEqual(['8:b']);
      const doneTasks = await store.listTasks('done');
      expect(doneTasks.map((t) => [t.id, t.state, t.doneBy])).toEqual([
        ['9:c', 'done', 'slack:U0CUST'],
        ['8:a', 'done', 'api:itsm'],
      ]);
      expect(doneTasks[0]?.doneAt).toBe('2026-11-27T11:00:00.000Z');
    });

    it('never lists a task for a compare-and-set that lost', async () => {
      const action = actionRecord('10', 'a');
      await store.upsertIncident(incidentRecord('10'), [action], []);
      await store.compareAndSet(
        moved(action, 'approved'),
        1,
        auditEntry('approve', { incidentId: '10', actionId: 'a' }),
      );

      const lost = await store.compareAndSet(
        moved(action, 'customerPending', { excludedBy: 'device tag VIP' }),
        1,
        auditEntry('approve', { incidentId: '10', actionId: 'a' }),
      );

      expect(lost.ok).toBe(false);
      expect(await store.listTasks('pending')).toEqual([]);
      expect(await store.listTasks('done')).toEqual([]);
    });

    it('lists actions by execution phase, whatever the age of their incident, and drops those that ended', async () => {
      const ids = { incidentId: '20', actionId: 'a' };
      const a = actionRecord('20', 'a');
      const b = actionRecord('21', 'b');
      await store.upsertIncident(incidentRecord('20'), [a], []);
      await store.upsertIncident(incidentRecord('21', { receivedAt: '2020-01-01T00:00:00.000Z' }), [b], []);
      const phases = async () => ({
        approved: (await store.listActionsIn('approved')).map((x) => `${x.incidentId}:${x.id}`),
        starting: (await store.listActionsIn('starting')).map((x) => `${x.incidentId}:${x.id}`),
        submitted: (await store.listActionsIn('submitted')).map((x) => `${x.incidentId}:${x.id}`),
      });
      expect(await phases()).toEqual({ approved: [], starting: [], submitted: [] });

      const approvedB = moved(b, 'approved');
      await store.compareAndSet(approvedB, 1, auditEntry('approve', { incidentId: '21', actionId: 'b' }));
      const approvedA = moved(a, 'approved');
      await store.compareAndSet(approvedA, 1, auditEntry('approve', ids));
      expect(await phases()).toEqual({ approved: ['21:b', '20:a'], starting: [], submitted: [] });
      expect((await store.listActionsIn('approved', 1)).map((x) => x.id)).toEqual(['b']);

      const starting = moved(approvedA, 'executing', { executionToken: 't1' });
      await store.compareAndSet(starting, 2, auditEntry('execute', ids));
      expect(await phases()).toEqual({ approved: ['21:b'], starting: ['20:a'], submitted: [] });

      const submitted = moved(starting, 'executing', { externalId: 'ma-1' });
      await store.compareAndSet(submitted, 3, auditEntry('progress', ids));
      expect(await phases()).toEqual({ approved: ['21:b'], starting: [], submitted: ['20:a'] });
      expect((await store.listActionsIn('submitted'))[0]).toMatchObject({ externalId: 'ma-1', version: 4 });

      await store.compareAndSet(moved(submitted, 'succeeded'), 4, auditEntry('execute', ids));
      await store.compareAndSet(
        moved(approvedB, 'failed'),
        2,
        auditEntry('execute', { incidentId: '21', actionId: 'b' }),
      );
      expect(await phases()).toEqual({ approved: [], starting: [], submitted: [] });
    });

    it('reads a window of a phase index, wrapping around, and drops the ended entries it reads', async () => {
      const ids = ['a', 'b', 'c'];
      await store.upsertIncident(
        incidentRecord('23'),
        ids.map((id) => actionRecord('23', id)),
        [],
      );
      const approved: Record<string, ReturnType<typeof actionRecord>> = {};
      for (const id of ids) {
        approved[id] = moved(actionRecord('23', id), 'approved');
        await store.compareAndSet(approved[id], 1, auditEntry('approve', { incidentId: '23', actionId: id }));
      }
      const slice = async (size: number, from: number) => {
        const { total, actions } = await store.sliceActionsIn('approved', size, from);
        return { total, ids: actions.map((x) => x.id) };
      };

      expect(await slice(2, 0)).toEqual({ total: 3, ids: ['a', 'b'] });
      expect(await slice(2, 2)).toEqual({ total: 3, ids: ['c', 'a'] });
      expect(await slice(5, 7)).toEqual({ total: 3, ids: ['a', 'b', 'c'] });

      const b = approved.b as ReturnType<typeof actionRecord>;
      await store.compareAndSet(
        moved(b, 'succeeded'),
        2,
        auditEntry('execute', { incidentId: '23', actionId: 'b' }),
      );
      // An ended action is never listed; its entry is gone once a window read it.
      expect((await slice(3, 0)).ids).toEqual(['a', 'c']);
      expect(await slice(3, 0)).toEqual({ total: 2, ids: ['a', 'c'] });
    });

    it('reads the entries of a phase index due by when their action entered it, a submission by its own time', async () => {
      const times = {
        a: '2026-11-27T10:00:00.000Z',
        b: '2026-11-27T10:00:05.000Z',
        c: '2026-11-27T10:00:10.000Z',
      };
      await store.upsertIncident(
        incidentRecord('24'),
        Object.keys(times).map((id) => actionRecord('24', id)),
        [],
      );
      for (const [id, submittedAt] of Object.entries(times)) {
        const submitted = moved(actionRecord('24', id), 'executing', { externalId: `ma-${id}`, submittedAt });
        await store.compareAndSet(submitted, 1, auditEntry('progress', { incidentId: '24', actionId: id }));
      }
      const notB = (enteredMs: number) => enteredMs !== Date.parse(times.b);
      const slice = async (size: number, from: number) =>
        (await store.sliceActionsIn('submitted', size, from, notB)).actions.map((x) => x.id);

      // The index fits in the window: the due ones only. It does not: a window of all, as without `due`.
      expect(await slice(3, 0)).toEqual(['a', 'c']);
      expect(await slice(5, 0)).toEqual(['a', 'c']);
      expect(await slice(2, 1)).toEqual(['b', 'c']);
    });

    it('never lists an action in a phase for a compare-and-set that lost', async () => {
      const action = actionRecord('22', 'a');
      await store.upsertIncident(incidentRecord('22'), [action], []);
      await store.compareAndSet(
        moved(action, 'rejected'),
        1,
        auditEntry('reject', { incidentId: '22', actionId: 'a' }),
      );

      const lost = await store.compareAndSet(
        moved(action, 'approved'),
        1,
        auditEntry('approve', { incidentId: '22', actionId: 'a' }),
      );

      expect(lost.ok).toBe(false);
      expect(await store.listActionsIn('approved')).toEqual([]);
    });

    it('keeps run-time exclusion changes, each one a compare-and-set on their version with its audit entry', async () => {
      const second: ExclusionChanges = {
        version: 1,
        added: vipAdded().added,
        removed: {
          devices: [],
          users: [{ rule: { group: 'Executives' }, by: 'api:admin', at: '2026-11-27T10:05:00.000Z' }],
        },
      };

      expect(await store.getExclusionChanges()).toEqual(NO_CHANGES);
      expect(await store.saveExclusionChanges(vipAdded(), 0, auditEntry('exclude'))).toBe(true);
      expect(await store.saveExclusionChanges(second, 0, auditEntry('stale'))).toBe(false);
      expect(await store.getExclusionChanges()).toEqual({ ...vipAdded(), version: 1 });
      expect(await store.saveExclusionChanges(second, 1, auditEntry('unexclude'))).toBe(true);
      expect(await store.saveExclusionChanges({ ...second, version: 7 }, 5, auditEntry('stale'))).toBe(false);

      expect(await store.getExclusionChanges()).toEqual({ ...second, version: 2 });
      expect((await store.listAudit()).map((e) => e.event)).toEqual(['exclude', 'unexclude']);
    });

    it('lets one of two exclusion changes from the same version win', async () => {
      await store.saveExclusionChanges(vipAdded(), 0, auditEntry('exclude'));
      const [a, b] = await Promise.all([
        store.saveExclusionChanges(
          { ...NO_CHANGES, version: 1 },
          1,
          auditEntry('unexclude', {}, { actor: 'a' }),
        ),
        store.saveExclusionChanges(
          { ...vipAdded(), version: 1 },
          1,
          auditEntry('exclude', {}, { actor: 'b' }),
        ),
      ]);

      expect([a, b].filter(Boolean)).toHaveLength(1);
      expect((await store.getExclusionChanges()).version).toBe(2);
      expect((await store.listAudit()).map((e) => e.actor)).toEqual(['slack:U0EXPERT1', a ? 'a' : 'b']);
    });

    it('keeps card references per incident and platform', async () => {
      const refs = {
        slack: { channel: 'C0SOC', ts: '1732700000.000100' },
        teams: [{ conversationId: '19:abc@thread.tacv2', activityId: '1732700000001' }],
      };

      expect(await store.getCardRefs('11')).toEqual({});
      await store.setCardRefs('11', refs);
      expect(await store.getCardRefs('11')).toEqual(refs);
      expect(await store.getCardRefs('12')).toEqual({});
      await store.setCardRefs('11', { slack: { channel: 'C0SOC', ts: '1732700000.000200' } });
      expect(await store.getCardRefs('11')).toEqual({
        ...refs,
        slack: { channel: 'C0SOC', ts: '1732700000.000200' },
      });
      await store.setCardRefs('12', { teams: refs.teams });
      expect(await store.getCardRefs('12')).toEqual({ teams: refs.teams });
    });

    it('keeps Teams conversation references until removed', async () => {
      const reference = {
        conversation: { id: '19:abc@thread.tacv2' },
        serviceUrl: 'https://smba.trafficmanager.net/',
      };
      await store.saveConversation('19:abc@thread.tacv2', reference);
      await store.saveConversation('19:def@thread.tacv2', { conversation: { id: '19:def@thread.tacv2' } });
      await store.removeConversation('19:def@thread.tacv2');

      expect(await store.listConversations()).toEqual([{ conversationId: '19:abc@thread.tacv2', reference }]);
    });

    it('reads the pauses of several channels at once, 0 for those not paused or no longer paused', async () => {
      const until = Date.now() + 60_000;
      await store.pauseChannel('slack:C0SOC', until);
      await store.pauseChannel('teams:19:short@thread.tacv2', Date.now() + 30);
      await vi.waitFor(
        async () => expect(await store.channelPausedUntil('teams:19:short@thread.tacv2')).toBe(0),
        { timeout: 5_000, interval: 10 },
      );

      expect(
        await store.channelsPausedUntil(['teams:19:short@thread.tacv2', 'slack:C0SOC', 'slack:C0OTHER']),
      ).toEqual([0, until, 0]);
      expect(await store.channelsPausedUntil([])).toEqual([]);
    });

    it('gives a claim to its first taker only, until it runs out', async () => {
      expect(await store.claimOnce('follow:1', 60_000)).toBe(true);
      expect(await store.claimOnce('follow:1', 60_000)).toBe(false);
      expect(await store.claimOnce('follow:2', 50)).toBe(true);
      // Ran out: taken again (waiting for the store to let the 50 ms claim go, not a fixed sleep).
      await vi.waitFor(async () => expect(await store.claimOnce('follow:2', 60_000)).toBe(true), {
        timeout: 5_000,
        interval: 10,
      });
      expect(await store.claimOnce('follow:1', 60_000)).toBe(false);
    });

    it('lists incidents most recently received first', async () => {
      await store.upsertIncident(incidentRecord('20', { receivedAt: '2026-11-27T09:00:00.000Z' }), [], []);
      await store.upsertIncident(incidentRecord('21', { receivedAt: '2026-11-27T11:00:00.000Z' }), [], []);
      await store.upsertIncident(incidentRecord('22', { receivedAt: '2026-11-27T10:00:00.000Z' }), [], []);

      expect((await store.listIncidents(10)).map((i) => i.id)).toEqual(['21', '22', '20']);
      expect((await store.listIncidents(2)).map((i) => i.id)).toEqual(['21', '22']);
    });

    it('grants a lease to one holder at a time until unlocked or expired', async () => {
      expect(await store.tryLock('deliver:slack:1', 60_000)).toBe(true);
      expect(await store.tryLock('deliver:slack:1', 60_000)).toBe(false);
      expect(await store.tryLock('deliver:teams:1', 60_000)).toBe(true);
      await store.unlock('deliver:slack:1');
      expect(await store.tryLock('deliver:slack:1', 50)).toBe(true);
      expect(await store.tryLock('deliver:slack:1', 60_000)).toBe(false);
      // Expired: taken again (waiting for the store to let the 50 ms lease go, not a fixed sleep).
      await vi.waitFor(async () => expect(await store.tryLock('deliver:slack:1', 60_000)).toBe(true), {
        timeout: 5_000,
        interval: 10,
      });
    });

    it('keeps the facts of each action write with its audit feed line, the outbox of webhook events', async () => {
      await store.upsertIncident(
        incidentRecord('30'),
        [actionRecord('30', 'act-1'), actionRecord('30', 'act-2', { state: 'customerPending' })],
        [
          auditEntry('ingest', { incidentId: '30' }),
          auditEntry('ingest', { incidentId: '30', actionId: 'act-1' }),
          auditEntry('ingest', { incidentId: '30', actionId: 'act-2' }),
        ],
      );
      const act2 = (await store.getAction('30', 'act-2')) as ActionRecord;
      const act1 = (await store.getAction('30', 'act-1')) as ActionRecord;
      await store.compareAndSet(
        moved(act2, 'doneByCustomer'),
        1,
        auditEntry('markDone', { incidentId: '30', actionId: 'act-2' }),
      );
      await store.compareAndSet(
        moved(act1, 'rejected'),
        1,
        auditEntry('reject', { incidentId: '30', actionId: 'act-1' }),
      );
      // A lost compare-and-set and an ingest that adds nothing write no facts.
      await store.compareAndSet(moved(act1, 'approved'), 1, auditEntry('approve', { incidentId: '30' }));
      await store.upsertIncident(incidentRecord('30'), [actionRecord('30', 'act-1')], []);

      const lines = await store.listAuditFeed(null, 100);
      expect(lines.map((l) => [l.entry.event, l.written !== undefined])).toEqual([
        ['ingest', true],
        ['ingest', false],
        ['ingest', false],
        ['markDone', true],
        ['reject', true],
      ]);
      const [ingested, , , done, rejected] = lines.map((l) => l.written as ActionsWritten);
      expect(ingested?.changed.map((c) => [c.before, c.after.id, c.after.state])).toEqual([
        [null, 'act-1', 'proposed'],
        [null, 'act-2', 'customerPending'],
      ]);
      expect(done?.changed).toEqual([
        { before: 'customerPending', after: { ...moved(act2, 'doneByCustomer'), version: 2 } },
      ]);
      const byId = (w?: ActionsWritten) => [...(w?.actions ?? [])].sort((a, b) => a.id.localeCompare(b.id));
      expect(byId(done)).toEqual([
        { id: 'act-1', version: 1, state: 'proposed' },
        { id: 'act-2', version: 2, state: 'doneByCustomer' },
      ]);
      expect(byId(rejected)).toEqual([
        { id: 'act-1', version: 2, state: 'rejected' },
        { id: 'act-2', version: 2, state: 'doneByCustomer' },
      ]);
      // The facts webhooks are told of, read back from the feed alone.
      const facts = (w?: ActionsWritten) => (w ? factsOf(w).map((f) => f.key) : []);
      expect(facts(ingested)).toEqual(['task.created|30|act-2|1']);
      expect(facts(done)).toEqual(['task.done|30|act-2|2']);
      expect(facts(rejected)).toEqual(['incident.resolved|30|act-1@2,act-2@2']);
    });

    it("writes an approval's and a start's facts without the incident's actions, and an end's with them", async () => {
      await store.upsertIncident(
        incidentRecord('31'),
        [actionRecord('31', 'act-1'), actionRecord('31', 'act-2')],
        [],
      );
      const act1 = (await store.getAction('31', 'act-1')) as ActionRecord;
      await store.compareAndSet(moved(act1, 'approved'), 1, auditEntry('approve', { incidentId: '31' }));
      await store.compareAndSet(moved(act1, 'executing'), 2, auditEntry('execute', { incidentId: '31' }));
      await store.compareAndSet(moved(act1, 'succeeded'), 3, auditEntry('succeeded', { incidentId: '31' }));
      const lines = (await store.listAuditFeed(null, 100)).filter((l) => l.entry.incidentId === '31');
      expect(lines.map((l) => [l.entry.event, l.written?.actions.map((a) => a.state) ?? null])).toEqual([
        ['approve', []],
        ['execute', []],
        ['succeeded', expect.arrayContaining(['succeeded', 'proposed'])],
      ]);
    });

    it('tells whether a feed cursor is older than the oldest line kept once lines were dropped', async () => {
      await store.appendAudit(auditEntry('exclude'));
      const [first] = await store.listAuditFeed(null, 1);
      expect(await store.auditFeedGap('1-0')).toBe(false);
      expect(await store.auditFeedGap(first?.cursor as string)).toBe(false);
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}

storeContract('MemoryStore', () => ({
  create: async () => new MemoryStore(),
  dispose: (store) => store.close(),
}));

let redis: TestRedis;
let next = 0;
beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
});
afterAll(async () => {
  await redis?.cleanup();
});

storeContract('RedisStore', () => ({
  create: async () => new RedisStore({ url: redis.url }, `${redis.prefix}${++next}:`),
  dispose: (store) => store.close(),
}));

// A private one-node cluster: the server refuses any command or script whose keys span two slots.
let cluster: PrivateRedisServer;
beforeAll(async () => {
  cluster = await PrivateRedisServer.startCluster();
});
afterAll(async () => {
  await cluster?.stop();
});

storeContract('RedisStore on Redis Cluster', () => {
  let client: Cluster;
  return {
    create: async () => {
      client = createRedisCluster(cluster.url);
      return new RedisStore(client, `test:cluster:${++next}:`);
    },
    dispose: async (store) => {
      await store.close();
      await client.quit();
    },
  };
});
