import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LocalQueue, type QueueLogger } from '../../../adapters/local-queue.js';

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

const open: LocalQueue[] = [];

function localQueue(logger = recordingLogger()) {
  const queue = new LocalQueue({ backoffMs: 20, logger });
  open.push(queue);
  return queue;
}

beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-11-27T10:00:00Z') });
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((q) => q.close()));
  vi.useRealTimers();
});

describe('LocalQueue (fake time)', () => {
  it('runs a job once even when the same id is added twice, and only after start', async () => {
    const queue = localQueue();
    const seen: unknown[] = [];
    queue.process('execute', async (data) => {
      seen.push(data);
    });

    await queue.add('execute', { n: 1 }, { id: 'execute-48213:act-1' });
    await queue.add('execute', { n: 2 }, { id: 'execute-48213:act-1' });
    await vi.runAllTimersAsync();
    expect(seen).toEqual([]);
    expect(await queue.has('execute', 'execute-48213:act-1')).toBe(true);

    await queue.start();
    await vi.runAllTimersAsync();
    expect(seen).toEqual([{ n: 1 }]);

    await queue.add('execute', { n: 3 }, { id: 'execute-48213:act-1' });
    await vi.runAllTimersAsync();
    expect(vi.getTimerCount()).toBe(0);
    expect(seen).toEqual([{ n: 1 }]);
  });

  it('runs a delayed job at its time, not a millisecond sooner', async () => {
    const queue = localQueue();
    const ranAt: number[] = [];
    queue.process('remind', async () => {
      ranAt.push(Date.now());
    });
    await queue.start();

    const addedAt = Date.now();
    await queue.add('remind', {}, { delayMs: 300 });
    await vi.advanceTimersByTimeAsync(299);
    expect(ranAt).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(ranAt).toEqual([addedAt + 300]);
  });

  it('retries with doubling backoff and logs, never throws, a job that fails for good', async () => {
    const logger = recordingLogger();
    const queue = localQueue(logger);
    const tries: number[] = [];
    queue.process('broken', async () => {
      tries.push(Date.now());
      throw new Error('always');
    });
    await queue.start();

    const addedAt = Date.now();
    await queue.add('broken', {}, { attempts: 3 });
    await queue.add('nobody-handles-this', {}, { attempts: 1 });
    await vi.runAllTimersAsync();

    expect(tries).toEqual([addedAt, addedAt + 20, addedAt + 60]);
    expect(logger.warnings).toEqual(['job failed, retrying', 'job failed, retrying']);
    expect(logger.errors).toEqual(['job failed for good', 'job failed for good']);
  });

  it('knows a job while it waits or runs, and not once it finished; replaceFinished runs it again', async () => {
    const queue = localQueue();
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
    await vi.runAllTimersAsync();
    expect(ran).toBe(1);
    expect(await queue.has('slow', 'a/1')).toBe(true);
    release();
    await vi.runAllTimersAsync();
    expect(await queue.has('slow', 'a/1')).toBe(false);
    expect(await queue.has('slow', 'never-added')).toBe(false);

    // Finished: the same id is refused, unless the finished job is to be replaced.
    await queue.add('slow', {}, { id: 'a/1' });
    expect(await queue.has('slow', 'a/1')).toBe(false);
    await vi.runAllTimersAsync();
    expect(ran).toBe(1);
    await queue.add('slow', {}, { id: 'a/1', replaceFinished: true });
    await vi.runAllTimersAsync();
    expect(ran).toBe(2);
  });

  it('runs a job on an interval until closed', async () => {
    const queue = localQueue();
    let runs = 0;
    queue.process('tick', async () => {
      runs++;
    });
    await queue.start();
    await queue.every('tick', 100);

    await vi.advanceTimersByTimeAsync(99);
    expect(runs).toBe(0);
    await vi.advanceTimersByTimeAsync(251);
    expect(runs).toBe(3);
    await queue.close();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(runs).toBe(3);
  });

  it('drops delayed jobs when closed', async () => {
    const queue = localQueue();
    let runs = 0;
    queue.process('remind', async () => {
      runs++;
    });
    await queue.start();
    await queue.add('remind', {}, { delayMs: 1_000 });
    await queue.close();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(runs).toBe(0);
    await expect(queue.add('remind', {})).rejects.toThrow('the job queue is closed');
  });
});

describe('LocalQueue.idle', () => {
  it('resolves only once delayed and retried jobs have run', async () => {
    const queue = localQueue();
    const done: string[] = [];
    let failures = 1;
    queue.process('later', async () => {
      done.push('later');
    });
    queue.process('flaky', async () => {
      if (failures-- > 0) throw new Error('once');
      done.push('flaky');
    });
    await queue.start();
    await queue.add('later', {}, { delayMs: 500 });
    await queue.add('flaky', {}, { attempts: 2 });

    let idle = false;
    const waiting = queue.idle().then(() => {
      idle = true;
    });
    await vi.advanceTimersByTimeAsync(499);
    expect(idle).toBe(false);
    await vi.advanceTimersByTimeAsync(20);
    await waiting;
    expect(done.sort()).toEqual(['flaky', 'later']);
  });
});
