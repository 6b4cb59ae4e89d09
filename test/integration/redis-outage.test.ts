import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullMqQueue } from '../../adapters/bullmq-queue.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { StoreUnavailableError } from '../../core/errors.js';
import type { ActionStore } from '../../core/ports.js';
import { freePort, PrivateRedisServer } from '../support/redis-server.js';
import { actionRecord, auditEntry, incidentRecord, moved } from '../support/store-fixtures.js';

/** Every call the bot makes, on a store that holds incident 1 with proposed action a. */
const CALLS: [string, (store: ActionStore) => Promise<unknown>][] = [
  ['ping', (s) => s.ping()],
  ['getIncident', (s) => s.getIncident('1')],
  ['loadForDecision', (s) => s.loadForDecision('1', 'a')],
  [
    'compareAndSet',
    (s) =>
      s.compareAndSet(
        moved(actionRecord('1', 'a'), 'approved'),
        1,
        auditEntry('approve', { incidentId: '1', actionId: 'a' }),
      ),
  ],
  ['upsertIncident', (s) => s.upsertIncident(incidentRecord('2'), [actionRecord('2', 'b')], [])],
  ['appendAudit', (s) => s.appendAudit(auditEntry('approve', { incidentId: '1' }))],
  ['listTasks', (s) => s.listTasks('pending')],
  ['listIncidents', (s) => s.listIncidents(10)],
  ['getExclusionChanges', (s) => s.getExclusionChanges()],
  [
    'saveExclusionChanges',
    (s) =>
      s.saveExclusionChanges(
        { version: 0, added: { devices: [], users: [] }, removed: { devices: [], users: [] } },
        0,
        auditEntry('exclude'),
      ),
  ],
  ['getCardRefs', (s) => s.getCardRefs('1')],
  ['listConversations', (s) => s.listConversations()],
  ['tryLock', (s) => s.tryLock('x', 1_000)],
];

async function failsFast(call: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  try {
    await call();
  } catch (error) {
    return { error, ms: Date.now() - started };
  }
  throw new Error('the call succeeded while Redis was down');
}

async function eventually(call: () => Promise<unknown>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await call();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

// Always a private server, even when REDIS_URL is set: this test kills it.
describe('RedisStore when Redis goes away', () => {
  let server: PrivateRedisServer;
  let store: RedisStore;

  beforeAll(async () => {
    server = await PrivateRedisServer.start();
    store = new RedisStore({ url: server.url }, 'test:outage:');
  });
  afterAll(async () => {
    await store?.close();
    await server?.stop();
  });

  it('fails every call with StoreUnavailableError instead of waiting for Redis, and recovers when Redis is back', async () => {
    await store.upsertIncident(incidentRecord('1'), [actionRecord('1', 'a')], []);

    await server.stop();
    const timings: number[] = [];
    for (const [name, call] of CALLS) {
      // A call that waited for Redis instead of failing would end in the test's timeout.
      const { error, ms } = await failsFast(() => call(store));
      expect(error, name).toBeInstanceOf(StoreUnavailableError);
      expect((error as StoreUnavailableError).code).toBe('store_unavailable');
      timings.push(ms);
    }
    console.info(`calls while Redis was down failed after ${timings.join(', ')} ms`);

    await server.start();
    await eventually(() => store.ping());
    await store.upsertIncident(incidentRecord('1'), [actionRecord('1', 'a')], []);
    const result = await store.compareAndSet(
      moved(actionRecord('1', 'a'), 'approved'),
      1,
      auditEntry('approve', { incidentId: '1', actionId: 'a' }),
    );
    expect(result.ok).toBe(true);
    expect((await store.getAction('1', 'a'))?.state).toBe('approved');
  });

  it('fails, without waiting, when Redis stops answering on an open connection, and recovers', async () => {
    await eventually(() => store.ping());
    server.pause();
    try {
      const { error } = await failsFast(() => store.getIncident('1'));
      expect(error).toBeInstanceOf(StoreUnavailableError);
    } finally {
      server.resume();
    }
    await eventually(() => store.ping());
  });

  it('refuses new jobs, without waiting, while Redis is down, and takes them again once it is back', async () => {
    const logger = { error: () => {}, warn: () => {} };
    const queue = new BullMqQueue({ url: server.url, keyPrefix: 'test:outage:', logger });
    try {
      await queue.add('execute', { n: 1 }, { id: 'execute-1:a' });
      await server.stop();

      const { error } = await failsFast(() => queue.add('execute', { n: 2 }, { id: 'execute-1:b' }));
      expect(error).toBeInstanceOf(StoreUnavailableError);

      await server.start();
      await eventually(() => queue.add('execute', { n: 3 }, { id: 'execute-1:c' }));
    } finally {
      await queue.close();
    }
  });

  it('fails fast when Redis is not there at start, and works once it comes up', async () => {
    const port = await freePort();
    const lateStore = new RedisStore({ url: `redis://127.0.0.1:${port}` }, 'test:outage:late:');
    try {
      const { error } = await failsFast(() => lateStore.getIncident('1'));
      expect(error).toBeInstanceOf(StoreUnavailableError);

      const lateServer = await PrivateRedisServer.start(port);
      try {
        await eventually(() => lateStore.ping());
        expect(await lateStore.getIncident('1')).toBeNull();
      } finally {
        await lateServer.stop();
      }
    } finally {
      await lateStore.close();
    }
  });
});
