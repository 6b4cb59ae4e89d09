import { Queue } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BullMqQueue, bullJobId } from '../../adapters/bullmq-queue.js';
import type { JobHandler } from '../../adapters/job-queue.js';
import type { QueueLogger } from '../../adapters/local-queue.js';
import { createRedisConnection } from '../../adapters/redis-connection.js';
import { LeaseLostError, RedisWorkLane } from '../../adapters/redis-work-lane.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import { RoundTripProxy } from '../support/round-trip-proxy.js';

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
/**
 * A lane of one slot (`light`, 3 attempts) on a Redis connection of its own, which a test may cut to be
 * a process that lost Redis.
 */
function laneOnItsOwnConnection(
  prefix: string,
  leaseMs: number,
  logger: QueueLogger,
  run: JobHandler,
): { lane: RedisWorkLane; connection: ReturnType<typeof createRedisConnection> } {
  const connection = createRedisConnection(redis.url, { connectionName: 'mdr-lanes-test', purpose: 'queue' });
  connection.on('error', () => {});
  const lane = new RedisWorkLane({
    redis: connection,
    prefix,
    lane: 'light',
    concurrency: 1,
    attempts: 3,
    backoffMs: 50,
    leaseMs,
    logger,
    handler: () => run,
  });
  return { lane, connection };
}

/**
 * A lane (lease 1 s) in a process that stops mid-run: its one run drops its connection to Redis and
 * never returns until `hold` opens, so the job is left under its lease. `took()`: runs started.
 */
function stoppedMidRun(prefix: string) {
  const hold = gate();
  let runs = 0;
  const { lane: stuck, connection: gone } = laneOnItsOwnConnection(
    prefix,
    1_000,
    recordingLogger(),
    async () => {
      runs++;
      gone.disconnect();
      await hold.opened;
    },
  );
  stuck.start();
  return { stuck, hold, took: () => runs };
}

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
    // A process that stops mid-run: its connection to Redis is gone, its job never returns by itself.
    const { stuck, hold, took } = stoppedMidRun(prefix);
    const since = Date.now();
    await stuck.add('work', { i: 1 }, { id: 'w1' });
    await expect.poll(took, WAIT).toBe(1);

    const other = lightQueue(prefix).queue;
    const done: number[] = [];
    other.process('work', async () => {
      done.push(Date.now());
    });
    await other.start();
    await expect.poll(() => done.length, WAIT).toBe(1);
    expect((done[0] ?? 0) - since).toBeGreaterThanOrEqual(1_000);
    hold.open();
    await stuck.close();
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

/** A process's own lane on the connections it would have, polling only every 10 minutes. */
function notifiedLane(
  prefix: string,
  handler: (data: unknown) => Promise<void>,
  extra: Partial<ConstructorParameters<typeof RedisWorkLane>[0]> = {},
) {
  const connection = createRedisConnection(redis.url, { connectionName: 'mdr-lanes-test', purpose: 'queue' });
  const subscriber = createRedisConnection(redis.url, { connectionName: 'mdr-lanes-sub', purpose: 'worker' });
  const lane = new RedisWorkLane({
    redis: connection,
    subscriber,
    prefix,
    lane: 'light',
    concurrency: 1,
    attempts: 3,
    backoffMs: 50,
    leaseMs: 60_000,
    pollMs: 600_000,
    logger: recordingLogger(),
    handler: () => handler,
    ...extra,
  });
  lanes.push({ lane, connections: [connection, subscriber] });
  return lane;
}
const lanes: { lane: RedisWorkLane; connections: ReturnType<typeof createRedisConnection>[] }[] = [];
afterEach(async () => {
  for (const { lane, connections } of lanes.splice(0)) {
    await lane.close();
    await Promise.all(connections.map((c) => c.quit()));
  }
});

describe('processes of a light lane that poll seldom', () => {
  it('take at once a job another process added but could not start (every slot busy, or no lane running)', async () => {
    const prefix = `${redis.prefix}notify-${n++}:`;
    const hold = gate();
    const ran: string[] = [];
    const busy = notifiedLane(prefix, async (data) => {
      ran.push(`busy:${(data as { i: number }).i}`);
      await hold.opened;
    });
    const free = notifiedLane(prefix, async (data) => {
      ran.push(`free:${(data as { i: number }).i}`);
    });
    busy.start();
    await busy.add('work', { i: 1 }, { id: 'n1' });
    await expect.poll(() => ran, WAIT).toEqual(['busy:1']);
    // Its first look over, the other process next looks when told (or when n1's lease of a minute ends).
    free.start();
    // Subscribed (both processes listen) and its looks on start and on the subscriber being ready done.
    const client = redis.client();
    const listening = async () =>
      ((await client.pubsub('NUMSUB', `${prefix}{lane:light}:look`)) as [string, number])[1];
    await expect.poll(listening, WAIT).toBe(2);
    await expect.poll(() => free.idle, WAIT).toBe(true);
    // Its one slot is busy: the other process is told, and takes the job long before its next poll.
    await busy.add('work', { i: 2 }, { id: 'n2' });
    await expect.poll(() => ran, WAIT).toEqual(['busy:1', 'free:2']);
    // A process running no lane (it only adds) tells the others too.
    const producer = notifiedLane(prefix, async () => {});
    await producer.add('work', { i: 3 }, { id: 'n3' });
    await expect.poll(() => ran, WAIT).toEqual(['busy:1', 'free:2', 'free:3']);
    hold.open();
  });

  it('are subscribed to the notifications of every light lane a process runs, started together', async () => {
    const prefix = `${redis.prefix}two-lanes-${n++}:`;
    const { queue, logger } = lightQueue(prefix, {
      lanes: {
        first: { jobs: ['a'], concurrency: 2, light: { attempts: 3 } },
        second: { jobs: ['b'], concurrency: 2, light: { attempts: 3 } },
      },
    });
    queue.process('a', async () => {});
    queue.process('b', async () => {});
    // Both lanes subscribe on one connection that connects on their first SUBSCRIBE: its ready check must
    // not come after them (Redis refuses INFO in subscriber mode, which failed the second subscription).
    await queue.start();
    const client = redis.client();
    const listening = async (lane: string) =>
      ((await client.pubsub('NUMSUB', `${prefix}{lane:${lane}}:look`)) as [string, number])[1];
    await expect.poll(() => listening('first'), WAIT).toBe(1);
    await expect.poll(() => listening('second'), WAIT).toBe(1);
    expect(logger.errors).toEqual([]);
  });

  it('take a delayed job another process added, and a dead process its job after the lease, when they fall due', async () => {
    const prefix = `${redis.prefix}next-due-${n++}:`;
    const ran: { i: number; at: number }[] = [];
    const taker = notifiedLane(prefix, async (data) => {
      ran.push({ i: (data as { i: number }).i, at: Date.now() });
    });
    taker.start();
    // Added by a process running no lane: the notification makes the taker look and learn its time.
    const producer = notifiedLane(prefix, async () => {});
    const added = Date.now();
    await producer.add('work', { i: 1 }, { id: 'd1', delayMs: 300 });
    await expect.poll(() => ran.length, WAIT).toBe(1);
    expect((ran[0]?.at ?? 0) - added).toBeGreaterThanOrEqual(295);

    // A process that stops mid-run: the taker, not told, looks again when its lease ends.
    const { stuck, hold, took } = stoppedMidRun(prefix);
    await stuck.add('work', { i: 2 }, { id: 'd2' });
    await expect.poll(took, WAIT).toBe(1);
    // The taker's next look: a notification of a job it cannot take yet (held under the lease).
    await producer.add('work', { i: 3 }, { id: 'd3', delayMs: 60_000 });
    await expect.poll(() => ran.map((r) => r.i), WAIT).toEqual([1, 2]);
    hold.open();
    await stuck.close();
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

describe('the looks of a light lane', () => {
  it("runs a job of a group another process added during that group's run as soon as the run ends", async () => {
    const prefix = `${redis.prefix}group-wait-${n++}:`;
    const hold = gate();
    const ran: number[] = [];
    const record = async (data: unknown) => {
      const { i } = data as { i: number };
      ran.push(i);
      if (i === 1) await hold.opened;
    };
    const [a, b] = [notifiedLane(prefix, record), notifiedLane(prefix, record)];
    a.start();
    b.start();
    await expect.poll(() => a.idle && b.idle, WAIT).toBe(true);
    await a.add('work', { i: 1 }, { id: 'j1', group: 'g' });
    await expect.poll(() => ran, WAIT).toEqual([1]);
    // B looks at once, finds the group's run under way on A, and leaves the job waiting for it.
    await b.add('work', { i: 2 }, { id: 'j2', group: 'g' });
    await expect.poll(() => b.idle, WAIT).toBe(true);
    expect(ran).toEqual([1]);

    hold.open();

    // Both poll every 10 minutes: the end of A's run looks, since a job of its group waits.
    await expect.poll(() => ran, WAIT).toEqual([1, 2]);
  });

  /** A lane whose commands go through a counting proxy, started and idle. */
  async function measuredLane(run: (data: unknown) => Promise<void>) {
    const proxy = await RoundTripProxy.start(redis.url);
    const connection = createRedisConnection(`${proxy.url}${new URL(redis.url).pathname}`, {
      connectionName: 'mdr-lanes-test',
      purpose: 'queue',
    });
    const lane = notifiedLane(`${redis.prefix}looks-${n++}:`, run, { redis: connection });
    lane.start();
    await expect.poll(() => lane.idle, WAIT).toBe(true);
    proxy.reset();
    const scripts = () => proxy.commands().filter((c) => /^eval(sha)?$/i.test(c)).length;
    const close = async () => {
      await lane.close();
      await connection.quit();
      await proxy.close();
    };
    return { lane, proxy, scripts, close };
  }

  it('makes no look at the end of a run when no job waits for it', async () => {
    const ran: number[] = [];
    const { lane, scripts, close } = await measuredLane(async (data) => {
      ran.push((data as { i: number }).i);
    });

    for (let i = 1; i <= 5; i++) {
      await lane.add('work', { i }, { id: `j${i}` });
      await expect.poll(() => ran.length, WAIT).toBe(i);
      await expect.poll(() => lane.idle, WAIT).toBe(true);
    }

    // Each job: its ZADD, the look that takes it and the end of its run; no look after it.
    expect(scripts()).toBe(10);
    await close();
  });

  it('runs a delayed job of its own when it falls due after a look that filled every slot', async () => {
    const ran: number[] = [];
    const lane = notifiedLane(`${redis.prefix}full-${n++}:`, async (data) => {
      ran.push((data as { i: number }).i);
    });
    lane.start();
    await expect.poll(() => lane.idle, WAIT).toBe(true);

    await lane.add('work', { i: 1 }, { id: 'first', delayMs: 100 });
    await lane.add('work', { i: 2 }, { id: 'second', delayMs: 300 });

    // Its one slot taken by the first, the second runs at its time (the lane polls every 10 minutes).
    await expect.poll(() => ran, WAIT).toEqual([1, 2]);
  });

  it('makes one look for a job added again while it waits, at the earliest time asked', async () => {
    const ran: number[] = [];
    const { lane, proxy, scripts, close } = await measuredLane(async () => {
      ran.push(Date.now());
    });
    const first = Date.now();

    for (let i = 0; i < 5; i++)
      await lane.add('work', { card: 'c1' }, { coalesce: 'c1', delayMs: 200 + 50 * i });

    await expect.poll(() => ran.length, WAIT).toBe(1);
    // Past the latest time asked, no other look came.
    await expect.poll(() => Date.now() - first > 450 && lane.idle, WAIT).toBe(true);
    expect((ran[0] ?? 0) - first).toBeGreaterThanOrEqual(195);
    expect(ran).toHaveLength(1);
    expect(proxy.commands().filter((c) => c.toLowerCase() === 'zadd')).toHaveLength(5);
    // The look that takes it and the end of its run.
    expect(scripts()).toBe(2);
    await close();
  });
});

describe('the lease of a light-lane job', () => {
  it('is extended while the job runs: a job longer than its lease runs once, never beside itself', async () => {
    const prefix = `${redis.prefix}extend-${n++}:`;
    const runs: string[] = [];
    let aborted = false;
    // Lease 600 ms, job 2.5 s: without renewal the other process would take it after about 0.6 s.
    for (const name of ['a', 'b']) {
      const { queue } = lightQueue(prefix, { lockDurationMs: 600 });
      queue.process('work', async (_data, context) => {
        runs.push(name);
        await sleep(2_500);
        aborted ||= context?.signal?.aborted ?? false;
      });
      await queue.start();
    }
    const producer = lightQueue(prefix).queue;
    await producer.add('work', { long: true }, { id: 'long' });
    await expect.poll(() => runs.length, WAIT).toBe(1);
    await expect.poll(() => producer.has('work', 'long', { long: true }), WAIT).toBe(false);
    expect(runs).toHaveLength(1);
    expect(aborted).toBe(false);
  });

  it('tells a run to stop before its lease ends when it cannot be extended, and the job runs again elsewhere', async () => {
    const prefix = `${redis.prefix}lost-${n++}:`;
    const logger = recordingLogger();
    const leaseMs = 900;
    const events: { what: string; at: number; reason?: unknown }[] = [];
    const stopped = gate();
    const admin = redis.client();
    let leaseEnd = 0;
    const { lane, connection: cut } = laneOnItsOwnConnection(
      prefix,
      leaseMs,
      logger,
      async (_data, context) => {
        events.push({ what: 'a started', at: Date.now() });
        leaseEnd = Number(
          await admin.zscore(`${prefix}{lane:light}:due`, RedisWorkLane.member('work', 'cut', { i: 1 })),
        );
        // Redis goes away for this process: its lease cannot be renewed.
        cut.disconnect();
        const signal = context?.signal as AbortSignal;
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
        events.push({ what: 'a told to stop', at: Date.now(), reason: signal.reason });
        stopped.open();
      },
    );
    lane.start();
    await lane.add('work', { i: 1 }, { id: 'cut' });
    await stopped.opened;

    const other = lightQueue(prefix, { lockDurationMs: leaseMs }).queue;
    other.process('work', async () => {
      events.push({ what: 'b ran', at: Date.now() });
    });
    await other.start();
    await expect.poll(() => events.map((e) => e.what), WAIT).toContain('b ran');
    await lane.close();
    expect(events.map((e) => e.what)).toEqual(['a started', 'a told to stop', 'b ran']);
    const [started, told, ran] = events as [(typeof events)[0], (typeof events)[0], (typeof events)[0]];
    expect(told.reason).toBeInstanceOf(LeaseLostError);
    // Told to stop while its lease still stood; the job ran again only once the lease had ended.
    expect(told.at - started.at).toBeLessThan(leaseMs);
    expect(leaseEnd - started.at).toBeGreaterThan(leaseMs - 100);
    expect(ran.at).toBeGreaterThanOrEqual(leaseEnd);
    expect(logger.warnings).toContain(
      'job lease ended before the job did: the run was told to stop and the job is left to its next run',
    );
    await expect.poll(() => other.has('work', 'cut', { i: 1 }), WAIT).toBe(false);
  });

  it('ends a run whose lease another run took without touching that run', async () => {
    const prefix = `${redis.prefix}taken-${n++}:`;
    const { queue, logger } = lightQueue(prefix, { lockDurationMs: 900 });
    const admin = redis.client();
    const member = RedisWorkLane.member('work', 'taken', { t: 1 });
    const state = `${prefix}{lane:light}:state`;
    const signals: AbortSignal[] = [];
    queue.process('work', async (_data, context) => {
      const signal = context?.signal as AbortSignal;
      signals.push(signal);
      // Another run took the job (its lease end in the group's field): this run's renewal finds it gone.
      await admin.hset(state, `r:${member}`, String(Date.now() + 60_000));
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
    });
    await queue.start();
    await queue.add('work', { t: 1 }, { id: 'taken' });
    await expect.poll(() => signals[0]?.aborted ?? false, WAIT).toBe(true);
    await expect.poll(() => logger.warnings.length, WAIT).toBe(1);
    // The other run's lease and the job are left as they were.
    expect(Number(await admin.hget(state, `r:${member}`))).toBeGreaterThan(Date.now() + 30_000);
    expect(await queue.has('work', 'taken', { t: 1 })).toBe(true);
  });
});

describe('jobs an earlier version left in the BullMQ queue of a light lane', () => {
  it('are moved into the light lane on start, once across replicas, keeping id, key, group and time', async () => {
    const keyPrefix = `${redis.prefix}upgrade-${n++}:`;
    const legacy = new Queue('light', { connection: redis.client(), prefix: `${keyPrefix}{bull}` });
    const addedAt = Date.now();
    await legacy.add('work', { incidentId: 'i1', kind: 'id' }, { jobId: bullJobId('execute/i1/a:1') });
    await legacy.add('work', { incidentId: 'i2', kind: 'delayed' }, { jobId: bullJobId('d/1'), delay: 700 });
    await legacy.add('work', { incidentId: 'i3', kind: 'key' }, { deduplication: { id: 'deliver|*|i3' } });
    await legacy.add('work', { incidentId: 'i4', kind: 'plain' });
    expect(await legacy.count()).toBe(4);

    const runs: { kind: string; at: number }[] = [];
    const replicas: BullMqQueue[] = [];
    const groups: (string | undefined)[] = [];
    const held = gate();
    for (let r = 0; r < 2; r++) {
      const { queue } = lightQueue(keyPrefix, {
        lanes: {
          light: {
            jobs: ['work'],
            concurrency: 4,
            light: {
              attempts: 3,
              // Like the execute lane, the job of the kept id has no group.
              groupOf: (_name, data) => {
                const { incidentId, kind } = data as { incidentId: string; kind: string };
                if (kind === 'id') return undefined;
                groups.push(incidentId);
                return `g-${incidentId}`;
              },
            },
          },
        },
      });
      queue.process('work', async (data) => {
        const { kind } = data as { kind: string };
        if (kind === 'id') await held.opened;
        runs.push({ kind, at: Date.now() });
      });
      replicas.push(queue);
    }
    await Promise.all(replicas.map((q) => q.start()));
    // The id kept: the job is known under the id it was added with.
    const [first] = replicas as [BullMqQueue];
    await expect
      .poll(() => first.has('work', 'execute/i1/a:1', { incidentId: 'i1', kind: 'id' }), WAIT)
      .toBe(true);
    held.open();
    await expect.poll(() => runs.length, WAIT).toBe(4);

    const admin = redis.client();
    const due = `${keyPrefix}{lane:light}:due`;
    await expect.poll(() => admin.zcard(due), WAIT).toBe(0);
    expect(runs.map((r) => r.kind).sort()).toEqual(['delayed', 'id', 'key', 'plain']);
    expect((runs.find((r) => r.kind === 'delayed')?.at ?? 0) - addedAt).toBeGreaterThanOrEqual(690);
    expect(await legacy.getJobCounts('wait', 'delayed', 'paused', 'prioritized')).toEqual({
      wait: 0,
      delayed: 0,
      paused: 0,
      prioritized: 0,
    });
    expect(new Set(groups)).toEqual(new Set(['i2', 'i3', 'i4']));
    await legacy.close();
  });
});
