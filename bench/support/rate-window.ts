/**
 * Defender's documented API limits as a fake enforces them: each limit counts the calls accepted in the
 * last `windowMs`; a call over any limit is refused with the seconds until the oldest counted call leaves
 * that window (what `Retry-After` carries). Refused calls are not counted.
 */
export interface Limit {
  windowMs: number;
  max: number;
}

/** Machine-action calls: 100 a minute and 1,500 an hour per tenant. */
export const DEFENDER_LIMITS: readonly Limit[] = [
  { windowMs: 60_000, max: 100 },
  { windowMs: 3_600_000, max: 1_500 },
];

export class RateWindow {
  private readonly accepted: number[] = [];
  private readonly longest: number;

  constructor(private readonly limits: readonly Limit[] = DEFENDER_LIMITS) {
    this.longest = Math.max(...limits.map((l) => l.windowMs));
  }

  /** Take one call at `now` (ms): 0 when accepted, else the whole seconds to wait (≥ 1). */
  take(now: number): number {
    while (this.accepted.length > 0 && this.accepted[0]! <= now - this.longest) this.accepted.shift();
    let waitMs = 0;
    for (const limit of this.limits) {
      const from = now - limit.windowMs;
      // accepted is sorted: the calls inside this window are its tail.
      let first = this.accepted.length;
      while (first > 0 && this.accepted[first - 1]! > from) first--;
      const inside = this.accepted.length - first;
      if (inside >= limit.max) {
        const frees = this.accepted[this.accepted.length - limit.max]! + limit.windowMs;
        waitMs = Math.max(waitMs, frees - now);
      }
    }
    if (waitMs > 0) return Math.max(1, Math.ceil(waitMs / 1000));
    this.accepted.push(now);
    return 0;
  }
}
