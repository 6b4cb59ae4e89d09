import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BullMqQueue, bullJobId } from '../../adapters/bullmq-queue.js';
import type { JobQueue } from '../../adapters/job-queue.js';
import type { QueueLogger } from '../../adapters/local-queue.js';
import { childMarkerEnv } from '../support/bot-process.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';

const WORKER_PROCESS = fileURLToPath(new URL('../support/bullmq-worker-process.ts', import.meta.url));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it holds (or fails after `timeoutMs`). */
async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(20);
  }
}

/** Waits until none of `ids` waits, is delayed or runs in `queue` (every job added so far has ended). */
async function drained(queue: JobQueue, name: string, ids: readonly string[]): Promise<void> {
  await waitFor(async () => {
    for (const id of ids) if (await queue.has(name, id)) return false;
    return true;
  });
}

/** A logger that keeps what it is told. */
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

let redis: TestRedis;
let queueNo = 0;
const open: JobQueue[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
});
afterEach(async () => {
  // Each worker process runs in its own process group: end the group and wait until it is gone.
  for (const child of children.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null || !child.pid) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
    await exited;
  }
  await Promise.all(open.splice(0).map((q) => q.close()));
});
afterAll(async () => {
  await redis?.cleanup();
});

/** Each test gets its own BullMQ prefix under the file's, so leftovers never leak between tests. */
function bullQueue(keyPrefix: string, extra: Partial<ConstructorParameters<typeof BullMqQueue>[0]> = {}) {
  const queue = new BullMqQueue({
    url: redis.url,
    keyPrefix,
    backoffMs: 50,
    lockDurationMs: 1_000,
    stalledIntervalMs: 300,
    logger: recordingLogger(),
    ...extra,
  });
  open.push(queue);
  return queue;
}

describe('bullJobId', () => {
  it('maps ids BullMQ refuses to distinct accepted ones', () => {
    const ids = ['48213:act-3', '48213%3Aact-3', '42', 'remind-1-a-2026-11-27T10:00:00.000Z'];
    const mapped = ids.map(bullJobId);

    expect(new Set(mapped).size).toBe(ids.length);
    for (const id of mapped) {
      expect(id).not.toContain(':');
      expect(String(Number.parseInt(id, 10))).not.toBe(id);
    }
  });
});

describe('BullMqQueue', () => {
  it('runs a job with its data, once, even when the same id is added twice', async () => {
    const prefix = `${redis.prefix}once${++queueNo}:`;
    const queue = bullQueue(prefix);
    const seen: unknown[] = [];
    queue.process('execute', async (data) => {
      seen.push(data);
    });

    const job = { kind: 'execute', incidentId: '48213', actionId: 'act-1' };
    await queue.add('execute', job, { id: 'execute-48213:act-1' });
    await queue.add('execute', job, { id: 'execute-48213:act-1' });
    await queue.start();
    await waitFor(() => seen.length === 1);
    await queue.add('execute', job, { id: 'execute-48213:act-1' });
    // A job added after the refused one: once it ran and nothing is left waiting under either id,
    // a second run of the first would have happened.
    const after = { kind: 'execute', incidentId: '48213', actionId: 'act-2' };
    await queue.add('execute', after, { id: 'execute-48213:act-2' });
    await waitFor(() => seen.length >= 2);
    await drained(queue, 'execute', ['execute-48213:act-1', 'execute-48213:act-2']);

    expect(seen).toEqual([job, after]);
  });

  it('runs a delayed job no sooner than its time', async () => {
    const queue = bullQueue(`${redis.prefix}delay${++queueNo}:`);
    let ranAt = 0;
    queue.process('remind', async () => {
      ranAt = Date.now();
    });
    await queue.start();

    const addedAt = Date.now();
    await queue.add('remind', {}, { id: 'remind-1', delayMs: 700 });
    await waitFor(() => ranAt > 0);

    expect(ranAt - addedAt).toBeGreaterThanOrEqual(690);
  });

  it('retries a failing job with backoff, and logs it when it fails for good', async () => {
    const logger = recordingLogger();
    const queue = bullQueue(`${redis.prefix}retry${++queueNo}:`, { logger });
    const tries: Record<string, number[]> = { flaky: [], broken: [] };
    queue.process('flaky', async () => {
      tries.flaky?.push(Date.now());
      if ((tries.flaky?.length ?? 0) < 3) throw new Error('Defender 503');
    });
    queue.process('broken', async () => {
      tries.broken?.push(Date.now());
      throw new Error('always');
    });
    await queue.start();

    await queue.add('flaky', {}, { id: 'flaky', attempts: 3 });
    await queue.add('broken', {}, { id: 'broken', attempts: 2 });
    await waitFor(() => tries.flaky?.length === 3 && logger.errors.length === 1);

    const [t1 = 0, t2 = 0, t3 = 0] = tries.flaky ?? [];
    expect(t2 - t1).toBeGreaterThanOrEqual(45);
    expect(t3 - t2).toBeGreaterThanOrEqual(95);
    expect(tries.broken).toHaveLength(2);
    expect(logger.errors).toEqual(['job failed for good']);
  });

  it('has a job whose worker process died run again by another worker', async () => {
    const prefix = `${redis.prefix}stalled${++queueNo}:`;
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER_PROCESS], {
      env: {
        ...process.env,
        ...childMarkerEnv(),
        TEST_REDIS_URL: redis.url,
        TEST_KEY_PREFIX: prefix,
        TEST_LOCK_MS: '1000',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    });
    children.push(child);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    await waitFor(() => output.includes('ready'), 20_000);

    const queue = bullQueue(prefix);
    await queue.add('hang', { n: 7 }, { id: 'execute-48213:act-1' });
    await waitFor(() => output.includes('started 7'));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(-(child.pid ?? 0), 'SIGKILL');
    await exited;

    const runs: unknown[] = [];
    queue.process('hang', async (data) => {
      runs.push(data);
    });
    await queue.start();
    await waitFor(() => runs.length === 1, 10_000);

    expect(runs).toEqual([{ n: 7 }]);
  });

  it('shares the work among several workers, each job run once', async () => {
    const prefix = `${redis.prefix}shared${++queueNo}:`;
    const runs: string[] = [];
    const queues = [bullQueue(prefix), bullQueue(prefix), bullQueue(prefix)];
    queues.forEach((queue, i) => {
      queue.process('work', async (data) => {
        await sleep(5);
        runs.push(`${i}:${(data as { n: number }).n}`);
      });
    });
    await Promise.all(queues.map((q) => q.start()));

    for (let n = 0; n < 60; n += 1) {
      await queues[n % 3]?.add('work', { n }, { id: `work:${n}` });
      await queues[(n + 1) % 3]?.add('work', { n }, { id: `work:${n}` });
    }
    await waitFor(() => runs.length >= 60);
    // Every id was added twice: nothing may be left waiting that could still run a second time.
    await drained(
      queues[0] as JobQueue,
      'work',
      Array.from({ length: 60 }, (_, n) => `work:${n}`),
    );

    const jobs = runs.map((r) => r.split(':')[1]);
    expect(runs).toHaveLength(60);
    expect(new Set(jobs).size).toBe(60);
  });
});

describe('BullMQ queue: has, replaceFinished and every', () => {
  const make = (n: number) => bullQueue(`${redis.prefix}lanes-${n}:`);
  it('knows a job while it waits or runs, and not once it finished', async () => {
    const queue = make(queueNo++);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let ran = 0;
    queue.process('slow', async () => {
      ran++;
      await gate;
    });
    await queue.add('slow', {}, { id: 'a/1' });
    expect(await queue.has('slow', 'a/1')).toBe(true);
    await queue.start();
    await waitFor(() => ran === 1);
    expect(await queue.has('slow', 'a/1')).toBe(true);
    release();
    await waitFor(async () => !(await queue.has('slow', 'a/1')));
    expect(await queue.has('slow', 'never-added')).toBe(false);

    // Finished: the same id is refused, unless the finished job is to be replaced.
    await queue.add('slow', {}, { id: 'a/1' });
    expect(await queue.has('slow', 'a/1')).toBe(false);
    await queue.add('slow', {}, { id: 'a/1', replaceFinished: true });
    await waitFor(() => ran === 2);
  });

  it('runs a job on an interval until closed', async () => {
    const queue = make(queueNo++);
    let runs = 0;
    queue.process('tick', async () => {
      runs++;
    });
    await queue.start();
    await queue.every('tick', 100);
    await waitFor(() => runs >= 3);
  });
});

describe('BullMQ lanes', () => {
  it('a lane whose slots are all busy does not hold the jobs of another lane', async () => {
    const queue = bullQueue(`${redis.prefix}lanes-busy-${queueNo++}:`, {
      lanes: { slow: { jobs: ['slow'], concurrency: 2 }, fast: { jobs: ['fast'], concurrency: 2 } },
    });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started = 0;
    let fast = 0;
    queue.process('slow', async () => {
      started++;
      await gate;
    });
    queue.process('fast', async () => {
      fast++;
    });
    await queue.start();
    for (let i = 0; i < 6; i++) await queue.add('slow', { i });
    await waitFor(() => started === 2);
    for (let i = 0; i < 20; i++) await queue.add('fast', { i });
    await waitFor(() => fast === 20);
    expect(started).toBe(2);
    release();
    await waitFor(() => started === 6);
  });
});
