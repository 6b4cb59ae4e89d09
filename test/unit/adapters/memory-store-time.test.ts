import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../../../adapters/memory-store.js';

beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-11-27T10:00:00Z') });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('MemoryStore leases and pauses (fake time)', () => {
  it('holds a lease for exactly its time, to one holder, unless unlocked', async () => {
    const store = new MemoryStore();
    expect(await store.tryLock('deliver:slack:1', 1_000)).toBe(true);
    vi.advanceTimersByTime(999);
    expect(await store.tryLock('deliver:slack:1', 1_000)).toBe(false);
    expect(await store.tryLock('deliver:teams:1', 1_000)).toBe(true);
    vi.advanceTimersByTime(1);
    expect(await store.tryLock('deliver:slack:1', 1_000)).toBe(true);
    await store.unlock('deliver:slack:1');
    expect(await store.tryLock('deliver:slack:1', 1_000)).toBe(true);
  });

  it('holds a channel until its pause ends; a shorter pause does not cut it short', async () => {
    const store = new MemoryStore();
    const until = Date.now() + 2_000;
    await store.pauseChannel('slack:C0SOC', until);
    await store.pauseChannel('slack:C0SOC', until - 1_000);
    expect(await store.channelPausedUntil('slack:C0SOC')).toBe(until);
    vi.advanceTimersByTime(1_999);
    expect(await store.channelPausedUntil('slack:C0SOC')).toBe(until);
    vi.advanceTimersByTime(1);
    expect(await store.channelPausedUntil('slack:C0SOC')).toBe(0);
    expect(await store.channelPausedUntil('slack:C0OTHER')).toBe(0);
  });
});
