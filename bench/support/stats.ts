/** Nearest-rank percentile of `values` (ms); null when there are none. */
export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

/** p50 and p99 of a list of latencies, rounded to 0.1 ms. */
export function summary(values: number[]): { n: number; p50: number | null; p99: number | null } {
  const round = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10);
  return { n: values.length, p50: round(percentile(values, 50)), p99: round(percentile(values, 99)) };
}

/** `a / b` rounded to `digits`, or null when either is missing or b is 0. */
export function ratio(a: number | null | undefined, b: number | null | undefined, digits = 2): number | null {
  if (a == null || b == null || b === 0) return null;
  const f = 10 ** digits;
  return Math.round((a / b) * f) / f;
}
