import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../../adapters/memory-store.js';
import { RedisStore } from '../../adapters/redis-store.js';
import type { ActionStore } from '../../core/ports.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';

let redis: TestRedis;
beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
});
afterAll(async () => {
  await redis.cleanup();
});

const stores: [string, () => ActionStore[]][] = [
  [
    'memory',
    () => {
      const store = new MemoryStore();
      return [store, store];
    },
  ],
  [
    'redis (two processes on one prefix)',
    () => {
      const prefix = `${redis.prefix}${Math.random().toString(36).slice(2, 10)}:`;
      return [new RedisStore({ url: redis.url }, prefix), new RedisStore({ url: redis.url }, prefix)];
    },
  ],
];

describe.each(stores)('channel pauses in the %s store', (_name, make) => {
  it('holds a channel until the pause ends, for every process, and leaves other channels alone', async () => {
    const [one, two] = make() as [ActionStore, ActionStore];
    try {
      const until = Date.now() + 400;
      await one.pauseChannel('slack:C0SOC', until);
      expect(await two.channelPausedUntil('slack:C0SOC')).toBe(until);
      expect(await two.channelPausedUntil('slack:C0OTHER')).toBe(0);

      // A shorter pause asked for later does not cut the longer one short; a longer one extends it.
      await two.pauseChannel('slack:C0SOC', until - 200);
      expect(await one.channelPausedUntil('slack:C0SOC')).toBe(until);
      await two.pauseChannel('slack:C0SOC', until + 100);
      expect(await one.channelPausedUntil('slack:C0SOC')).toBe(until + 100);

      await vi.waitFor(async () => expect(await one.channelPausedUntil('slack:C0SOC')).toBe(0), {
        timeout: 3_000,
        interval: 25,
      });
      expect(Date.now()).toBeGreaterThanOrEqual(until + 100);
      // A pause that has already ended is not recorded.
      await one.pauseChannel('slack:C0SOC', Date.now() - 1);
      expect(await two.channelPausedUntil('slack:C0SOC')).toBe(0);
    } finally {
      await one.close();
      await two.close();
    }
  });
});
