import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { recordPosted } from '../../../bot/delivery.js';
import { StoreUnavailableError } from '../../../core/errors.js';

beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-11-27T10:00:00Z') });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('recordPosted', () => {
  it('retries the write while the store is away and keeps nothing once it is written', async () => {
    let writes = 0;
    const kept: string[] = [];
    const at: number[] = [];
    const done = recordPosted(
      async () => {
        writes++;
        at.push(Date.now());
        if (writes < 3) throw new StoreUnavailableError('Redis is not reachable');
      },
      () => kept.push('ts'),
      5_000,
    );
    await vi.runAllTimersAsync();
    await done;
    expect(writes).toBe(3);
    // A quarter of a second between tries.
    expect(at.map((t) => t - (at[0] ?? 0))).toEqual([0, 250, 500]);
    expect(kept).toEqual([]);
  });

  it('keeps the posted card and fails when the store stays away past the bound', async () => {
    const kept: string[] = [];
    const started = Date.now();
    let writes = 0;
    const done = recordPosted(
      async () => {
        writes++;
        throw new StoreUnavailableError('Redis is not reachable');
      },
      () => kept.push('ts'),
      1_000,
    );
    const failed = expect(done).rejects.toThrow(StoreUnavailableError);
    await vi.advanceTimersByTimeAsync(999);
    expect(kept).toEqual([]);
    await vi.runAllTimersAsync();
    await failed;
    expect(kept).toEqual(['ts']);
    // Tried at 0, 250, 500, 750 and 1000 ms: the last try is the one past the bound.
    expect(writes).toBe(5);
    expect(Date.now() - started).toBe(1_000);
  });

  it('keeps the card and fails at once on any other error', async () => {
    const kept: string[] = [];
    let writes = 0;
    await expect(
      recordPosted(
        async () => {
          writes++;
          throw new Error('bad reply');
        },
        () => kept.push('ts'),
        5_000,
      ),
    ).rejects.toThrow('bad reply');
    expect(writes).toBe(1);
    expect(kept).toEqual(['ts']);
  });
});
