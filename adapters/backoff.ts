/**
 * Exponential back-off: `firstMs` before the first retry (`retry` 0), doubled for each retry after,
 * never above `capMs`. Every retry wait of the adapters and the bot is this one formula.
 */
export function backoffMs(firstMs: number, retry: number, capMs = Number.POSITIVE_INFINITY): number {
  return Math.min(firstMs * 2 ** Math.max(0, retry), capMs);
}
