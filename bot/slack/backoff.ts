/**
 * How a Slack connection retries after failures in a row: `firstMs` after the first, doubled after each
 * next, never above `maxMs` (the formula is `backoffMs` of adapters/backoff.ts).
 */
export interface Backoff {
  firstMs: number;
  maxMs: number;
}

/** One second, doubling up to a minute. */
export const DEFAULT_BACKOFF: Backoff = { firstMs: 1_000, maxMs: 60_000 };
