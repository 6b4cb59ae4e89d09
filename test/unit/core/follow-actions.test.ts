import { describe, expect, it } from 'vitest';
import { checkDue } from '../../../core/follow-actions.js';

describe('the checks of a submitted action', () => {
  it('come every round at first, then every 2nd round, every 4th after 12 and every 6th after 60', () => {
    const due = Array.from({ length: 80 }, (_, n) => n).filter((n) => checkDue(1_000, 1_000 + n));

    expect(due).toEqual([
      0, 1, 2, 4, 6, 8, 10, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 66, 72, 78,
    ]);
  });

  it('come in a round a replica with a clock behind puts before the submission', () => {
    expect(checkDue(1_000, 999)).toBe(true);
  });
});
