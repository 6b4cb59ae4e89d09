import { describe, expect, it } from 'vitest';
import { retryAfterMsOf } from '../../../adapters/http-client.js';
import { retryDelayMs } from '../../../bot/delivery.js';
import { ConnectorError } from '../../../bot/teams/connector-api.js';
import { retryAfterMs, statusOf } from '../../../bot/teams/publisher.js';

/** A Bot Connector failure as the connector client reports it: status and the answer's headers. */
function connectorError(status: number, headers: Record<string, string> = {}) {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return new ConnectorError('POST', status, lower, '{}');
}

describe('retryDelayMs (back-off of a failed card delivery)', () => {
  it('doubles from about 1 s to at most 60 s, with jitter between half and all of it', () => {
    expect(retryDelayMs(0, 0, () => 0)).toBe(500);
    expect(retryDelayMs(0, 0, () => 1)).toBe(1_000);
    expect(retryDelayMs(3, 0, () => 1)).toBe(8_000);
    expect(retryDelayMs(20, 0, () => 1)).toBe(60_000);
    expect(retryDelayMs(20, 0, () => 0)).toBe(30_000);
  });

  it('never goes below the floor (a Retry-After)', () => {
    expect(retryDelayMs(0, 5_000, () => 1)).toBe(5_000);
  });
});

describe('Bot Connector failures', () => {
  it('reads Retry-After in seconds or as an HTTP date, and nothing when it is absent or unreadable', () => {
    const now = Date.parse('2026-11-27T10:00:00Z');
    expect(retryAfterMsOf('2', now)).toBe(2_000);
    expect(retryAfterMsOf('Fri, 27 Nov 2026 10:00:03 GMT', now)).toBe(3_000);
    expect(retryAfterMsOf(undefined, now)).toBeUndefined();
    expect(retryAfterMsOf('soon', now)).toBeUndefined();
    expect(retryAfterMs(connectorError(429, { 'Retry-After': '2' }))).toBe(2_000);
    expect(retryAfterMs(connectorError(429))).toBeUndefined();
    expect(retryAfterMs(connectorError(429, { 'Retry-After': 'soon' }))).toBeUndefined();
    expect(retryAfterMs(new Error('no response'))).toBeUndefined();
  });

  it('caps Retry-After at an hour', () => {
    expect(retryAfterMs(connectorError(429, { 'Retry-After': '86400' }))).toBe(3_600_000);
  });

  it('reads the status of the failure', () => {
    expect(statusOf(connectorError(502))).toBe(502);
    expect(statusOf(new Error('network'))).toBeUndefined();
  });
});
