import { describe, expect, it } from 'vitest';
import { recordPosted } from '../../../bot/delivery.js';
import { StoreUnavailableError } from '../../../core/errors.js';

describe('recordPosted', () => {
  it('retries the write while the store is away and keeps nothing once it is written', async () => {
    let writes = 0;
    const kept: string[] = [];
    await recordPosted(
      async () => {
        writes++;
        if (writes < 3) throw new StoreUnavailableError('Redis is not reachable');
      },
      () => kept.push('ts'),
      5_000,
    );
    expect(writes).toBe(3);
    expect(kept).toEqual([]);
  });

  it('keeps the posted card and fails when the store stays away past the bound', async () => {
    const kept: string[] = [];
    await expect(
      recordPosted(
        async () => {
          throw new StoreUnavailableError('Redis is not reachable');
        },
        () => kept.push('ts'),
        300,
      ),
    ).rejects.toThrow(StoreUnavailableError);
    expect(kept).toEqual(['ts']);
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
