import { describe, expect, it } from 'vitest';
import {
  ConversationRateLimiter,
  rateLimitDelay,
  TEAMS_CONVERSATION_LIMITS,
  TeamsRetryableError,
  withTeamsRetry,
} from '../../../../bot/teams/throttle.js';

const httpError = (statusCode: number, retryAfter?: string) =>
  Object.assign(new Error(`status ${statusCode}`), {
    statusCode,
    response: { headers: { get: (name: string) => (name === 'retry-after' ? retryAfter : undefined) } },
  });

describe('rateLimitDelay', () => {
  it('lets 7 sends a second through and holds the 8th until the first leaves the window', () => {
    const sent = [0, 100, 200, 300, 400, 500, 600];
    expect(rateLimitDelay(sent.slice(0, 6), 700, TEAMS_CONVERSATION_LIMITS)).toBe(0);
    expect(rateLimitDelay(sent, 700, TEAMS_CONVERSATION_LIMITS)).toBe(301);
  });

  it('holds the 61st send in 30 seconds', () => {
    const sent = Array.from({ length: 60 }, (_, i) => i * 400);
    expect(rateLimitDelay(sent, 24_000, TEAMS_CONVERSATION_LIMITS)).toBe(6_001);
  });
});

describe('ConversationRateLimiter', () => {
  it('counts each conversation on its own', async () => {
    let now = 0;
    const limiter = new ConversationRateLimiter([{ limit: 2, ms: 1_000 }], () => now);
    await limiter.take('a');
    await limiter.take('a');
    await limiter.take('b');
    const third = limiter.take('a');
    now = 1_001;
    await third;
  });
});

describe('withTeamsRetry', () => {
  const noSleep = { sleep: async () => undefined, random: () => 0.5 };

  it.each([429, 412, 502, 504])('retries %s with growing jittered waits, then succeeds', async (status) => {
    const waits: number[] = [];
    let calls = 0;
    const result = await withTeamsRetry(
      async () => {
        calls++;
        if (calls < 3) throw httpError(status);
        return 'sent';
      },
      { ...noSleep, baseMs: 400, onRetry: ({ waitMs }) => waits.push(waitMs) },
    );
    expect(result).toBe('sent');
    expect(waits).toEqual([200, 400]);
  });

  it('waits at least Retry-After', async () => {
    const waits: number[] = [];
    let calls = 0;
    await withTeamsRetry(
      async () => {
        if (calls++ === 0) throw httpError(429, '3');
      },
      { ...noSleep, onRetry: ({ waitMs }) => waits.push(waitMs) },
    );
    expect(waits).toEqual([3_000]);
  });

  it('gives up after the last attempt with a retryable error for the queue', async () => {
    let calls = 0;
    const run = withTeamsRetry(
      async () => {
        calls++;
        throw httpError(429);
      },
      { ...noSleep, attempts: 3 },
    );
    await expect(run).rejects.toBeInstanceOf(TeamsRetryableError);
    expect(calls).toBe(3);
  });

  it('does not retry other failures', async () => {
    let calls = 0;
    const run = withTeamsRetry(async () => {
      calls++;
      throw httpError(400);
    }, noSleep);
    await expect(run).rejects.toThrow('status 400');
    expect(calls).toBe(1);
  });
});
