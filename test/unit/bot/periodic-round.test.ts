import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../../../adapters/memory-store.js';
import { createLogger } from '../../../bot/logger.js';
import { PeriodicRound } from '../../../bot/periodic-round.js';

const EVERY_MS = 5_000;

let rounds: PeriodicRound[] = [];
beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-11-30T10:00:00.000Z') });
});
afterEach(async () => {
  await Promise.all(rounds.map((r) => r.stop()));
  rounds = [];
  vi.useRealTimers();
});

/** One replica's round on the store the replicas share; `runs` records which replica ran, and when. */
function replica(
  store: MemoryStore,
  who: string,
  runs: { who: string; at: number }[],
  run?: () => Promise<void>,
) {
  const round = new PeriodicRound({
    name: 'follow',
    everyMs: EVERY_MS,
    store,
    logger: createLogger('silent'),
    run: async () => {
      runs.push({ who, at: Date.now() });
      await run?.();
    },
  });
  rounds.push(round);
  return round;
}

describe('a periodic round', () => {
  it('runs once per interval across replicas, at the interval boundaries', async () => {
    const store = new MemoryStore();
    const runs: { who: string; at: number }[] = [];
    replica(store, 'a', runs).start();
    await vi.advanceTimersByTimeAsync(1_234);
    replica(store, 'b', runs).start();

    await vi.advanceTimersByTimeAsync(5 * EVERY_MS);

    expect(runs).toHaveLength(5);
    expect(runs.every((r) => r.at % EVERY_MS === 0)).toBe(true);
    expect(new Set(runs.map((r) => r.at)).size).toBe(5);
  });

  it('leaves the next interval to another replica while its round still runs', async () => {
    const store = new MemoryStore();
    const runs: { who: string; at: number }[] = [];
    let release: () => void = () => {};
    const first = new Promise<void>((resolve) => (release = resolve));
    const slow = replica(store, 'a', runs, () => (runs.length === 1 ? first : Promise.resolve()));
    slow.start();
    await vi.advanceTimersByTimeAsync(EVERY_MS);
    expect(runs.map((r) => r.who)).toEqual(['a']);
    replica(store, 'b', runs).start();

    await vi.advanceTimersByTimeAsync(2 * EVERY_MS);

    expect(runs.map((r) => r.who)).toEqual(['a', 'b', 'b']);
    release();
    await vi.advanceTimersByTimeAsync(EVERY_MS);
    expect(runs).toHaveLength(4);
  });

  it('runs an interval that began during its last round once that is over, when no other replica took it', async () => {
    const store = new MemoryStore();
    const runs: { who: string; at: number }[] = [];
    let release: () => void = () => {};
    const first = new Promise<void>((resolve) => (release = resolve));
    replica(store, 'a', runs, () => (runs.length === 1 ? first : Promise.resolve())).start();
    await vi.advanceTimersByTimeAsync(EVERY_MS);
    const started = runs[0]?.at ?? 0;
    await vi.advanceTimersByTimeAsync(EVERY_MS + EVERY_MS / 2);
    expect(runs).toHaveLength(1);

    release();
    await vi.advanceTimersByTimeAsync(0);

    // At once (not at the next boundary), and only once for the two intervals that began meanwhile.
    expect(runs.map((r) => r.at - started)).toEqual([0, EVERY_MS + EVERY_MS / 2]);
    await vi.advanceTimersByTimeAsync(EVERY_MS / 2);
    expect(runs).toHaveLength(3);
  });

  it('runs again at the next interval after a round that failed', async () => {
    const store = new MemoryStore();
    const runs: { who: string; at: number }[] = [];
    let fail = true;
    replica(store, 'a', runs, async () => {
      if (fail) {
        fail = false;
        throw new Error('Defender did not answer');
      }
    }).start();

    await vi.advanceTimersByTimeAsync(2 * EVERY_MS);

    expect(runs).toHaveLength(2);
  });

  it('finishes a round under way when stopped, and starts no other', async () => {
    const store = new MemoryStore();
    const runs: { who: string; at: number }[] = [];
    let release: () => void = () => {};
    let finished = false;
    const round = replica(store, 'a', runs, async () => {
      await new Promise<void>((resolve) => (release = resolve));
      finished = true;
    });
    round.start();
    await vi.advanceTimersByTimeAsync(EVERY_MS);

    const stopped = round.stop();
    release();
    await stopped;

    expect(finished).toBe(true);
    await vi.advanceTimersByTimeAsync(3 * EVERY_MS);
    expect(runs).toHaveLength(1);
  });
});
