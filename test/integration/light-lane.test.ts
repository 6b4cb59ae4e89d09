import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BullMqQueue } from '../../adapters/bullmq-queue.js';
import type { QueueLogger } from '../../adapters/local-queue.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** How long a condition may take to hold on a busy machine (the lanes poll Redis). */
const WAIT = { timeout: 15_000, interval: 20 };

function recordingLogger(): QueueLogger & { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  return {
    errors,
    warnings,
    error: (_details, message) => errors.push(message),
    warn: (_details, message) => warnings.push(message),
  };
}

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

let redis: TestRedis;
let n = 0;
const open: BullMqQueue[] = [];

beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((q) => q.close()));
});
afterAll(async () => {
  await redis?.cleanup();
});

/** A queue whose job `work` runs in a light lane; `keyPrefix` shared by the "replicas" of one test. */
function lightQueue(keyPrefix: string, extra: Partial<ConstructorParameters<typeof BullMqQueue>[0]> = {}) {
  const logger = recordingLogger();
  const queue = new BullMqQueue({
    url: redis.url,
    keyPrefix,
    backoffMs: 50,
    lockDurationMs: 1_000,
    logger,
    lanes: { light: { jobs: ['work'], concurrency: 4, light: { attempts: 3 } } },
    ...extra,
  });
  open.push(queue);
  return { queue, logger };
}

describe('a light lane of the Redis queue', () => {
  it('runs a job once while its id waits or runs, knows it meanwhile, and runs it again once finished', async () => {
    const { queue } = lightQueue(`${redis.prefix}id-${n++}:`);
    const release = gate();
    const runs: unknown[] = [];
    queue.process('work', async (data) => {
      runs.push(data);
      await release.opened;
    });
    await queue.add('work', { x: 1 }, { id: 'a/1' });
    await queue.add('work', { x: 1 }, { id: 'a/1' });
    expect(await queue.has('work', 'a/1', { x: 1 })).toBe(true);
    expect(await queue.has('work', 'a/2', { x: 1 })).toBe(false);
    await queue.start();
    await expect.poll(() => runs.length, WAIT).toBe(1);
    await queue.add('work', { x: 1 }, { id: 'a/1' });
    expect(await queue.has('work', 'a/1', { x: 1 })).toBe(true);
    release.open();
    await expect.poll(() => queue.has('work', 'a/1', { x: 1 }), WAIT).toBe(false);
    expect(runs).toEqual([{ x: 1 }]);

    await queue.add('work', { x: 1 }, { id: 'a/1' });
    await expect.poll(() => runs.length, WAIT).toBe(2);
  });

  it('coalesces adds while a job waits, and runs once more after a run that an add came during', async () => {
    const { queue } = lightQueue(`${redis.prefix}coalesce-${n++}:`);
    let release = gate();
    let running = 0;
    let most = 0;
    const runs: number[] = [];
    queue.process('work', async () => {
      running++;
      most = Math.max(most, running);
      runs.push(Date.now());
      await release.opened;
      running--;
    });
    for (let i = 0; i < 5; i++) await queue.add('work', { card: 'c1' }, { coalesce: 'c1', delayMs: 100 });
    await queue.start();
    await expect.poll(() => runs.length, WAIT).toBe(1);
    // Changes while the run is under way: one more run, after it, never beside it.
    for (let i = 0; i < 3; i++) await queue.add('work', { card: 'c1' }, { coalesce: 'c1' });
    const first = release;
    release = gate();
    first.open();
    await expect.poll(() => runs.length, WAIT).toBe(2);
    release.open();
    await expect.poll(() => queue.has('work', 'c1', { card: 'c1' }), WAIT).toBe(false);
    expect(runs).toHaveLength(2);
    expect(most).toBe(1);
  });

  it('runs a delayed job no sooner than its time', async () => {
    const { queue } = lightQueue(`${redis.prefix}delay-${n++}:`);
    const ran: number[] = [];
    queue.process('work', async () => {
      ran.push(Date.now());
    });
    await queue.start();
    const added = Date.now();
    await queue.add('work', {}, { id: 'later', delayMs: 300 });
    await expect.poll(() => ran.length, WAIT).toBe(1);
    expect((ran[0] ?? 0) - added).toBeGreaterThanOrEqual(295);
  });

  it('retries a failing job with back-off and gives it up, logged, after the lane attempts', async () => {
    const { queue, logger } = lightQueue(`${redis.prefix}retry-${n++}:`);
    const tries: number[] = [];
    queue.process('work', async () => {
      tries.push(Date.now());
      throw new Error('platform down');
    });
    await queue.start();
    await queue.add('work', {}, { id: 'fails' });
    await expect.poll(() => logger.errors, WAIT).toEqual(['job failed for good']);
    expect(tries).toHaveLength(3);
    expect((tries[1] ?? 0) - (tries[0] ?? 0)).toBeGreaterThanOrEqual(45);
    expect((tries[2] ?? 0) - (tries[1] ?? 0)).toBeGreaterThanOrEqual(95);
    expect(logger.warnings).toHaveLength(2);
    expect(await queue.has('work', 'fails', {})).toBe(false);
  });

  it('has a job whose process stopped mid-run run again by another process after the lease', async () => {
    const prefix = `${redis.prefix}lease-${n++}:`;
    // One slot, held: this process takes nothing more, as if it had stopped.
    const stuck = lightQueue(prefix, {
      lanes: { light: { jobs: ['work'], concurrency: 1, light: { attempts: 3 } } },
    }).queue;
    const hold = gate();
    let took = 0;
    stuck.process('work', async () => {
      took++;
      await hold.opened;
    });
    await stuck.start();
    await stuck.add('work', { i: 1 }, { id: 'w1' });
    await expect.poll(() => took, WAIT).toBe(1);

    const other = lightQueue(prefix).queue;
    const done: number[] = [];
    other.process('work', async () => {
      done.push(Date.now());
    });
    const since = Date.now();
    await other.start();
    await expect.poll(() => done.length, WAIT).toBe(1);
    expect((done[0] ?? 0) - since).toBeGreaterThanOrEqual(500);
    hold.open();
  });

  it('shares the jobs among processes, each run once', async () => {
    const prefix = `${redis.prefix}share-${n++}:`;
    const runs: string[] = [];
    for (const name of ['a', 'b']) {
      const { queue } = lightQueue(prefix);
      queue.process('work', async (data) => {
        runs.push(`${name}:${(data as { i: number }).i}`);
        await sleep(5);
      });
      await queue.start();
    }
    const producer = lightQueue(prefix).queue;
    for (let i = 0; i < 60; i++) await producer.add('work', { i }, { id: `j${i}` });
    await expect.poll(() => runs.length, WAIT).toBe(60);
    for (let i = 0; i < 60; i++)
      await expect.poll(() => producer.has('work', `j${i}`, { i }), WAIT).toBe(false);
    expect(runs).toHaveLength(60);
    const jobs = runs.map((r) => Number(r.split(':')[1])).sort((x, y) => x - y);
    expect(jobs).toEqual([...Array(60).keys()]);
    expect(new Set(runs.map((r) => r.split(':')[0])).size).toBe(2);
  });
});

describe('groups of a light lane', () => {
  it('never runs two jobs of one group at once across processes, and runs every one', async () => {
    const prefix = `${redis.prefix}group-${n++}:`;
    const inGroup = new Map<string, number>();
    let overlaps = 0;
    const done: string[] = [];
    for (let q = 0; q < 2; q++) {
      const { queue } = lightQueue(prefix);
      queue.process('work', async (data) => {
        const { group, i } = data as { group: string; i: number };
        const now = (inGroup.get(group) ?? 0) + 1;
        inGroup.set(group, now);
        if (now > 1) overlaps++;
        await sleep(20);
        inGroup.set(group, (inGroup.get(group) ?? 1) - 1);
        done.push(`${group}:${i}`);
      });
      await queue.start();
    }
    const producer = lightQueue(prefix).queue;
    for (let i = 0; i < 8; i++) {
      for (const group of ['g1', 'g2'])
        await producer.add('work', { group, i }, { id: `${group}-${i}`, group });
    }
    await expect.poll(() => done.length, WAIT).toBe(16);
    expect(overlaps).toBe(0);
    expect(done.filter((d) => d.startsWith('g1:')).sort()).toEqual(
      [...Array(8).keys()].map((i) => `g1:${i}`),
    );
  });
});
