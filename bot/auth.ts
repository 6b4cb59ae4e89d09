import { createHash, timingSafeEqual } from 'node:crypto';

/** Compare two secrets in constant time (hashing first so lengths leak nothing). */
export function safeEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** True when `Authorization: Bearer <token>` matches one of the configured tokens (none configured: false). */
export function bearerMatches(header: string | undefined, tokens: (string | undefined)[]): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  const given = match?.[1];
  if (!given) return false;
  let ok = false;
  for (const token of tokens) if (token && safeEqual(given, token)) ok = true;
  return ok;
}
