import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/identity';
import { describe, expect, it } from 'vitest';
import { cachedTokens, REFRESH_BEFORE_EXPIRY_MS } from '../../../adapters/lazy-credential.js';

const HOUR = 3_600_000;

/** A credential that issues `token-1`, `token-2`, … valid for an hour from the clock, or fails when told. */
function issuing(clock: { now: number }) {
  const asked: { scopes: string | string[]; options?: GetTokenOptions }[] = [];
  let failing = false;
  let waiting: (() => void) | undefined;
  const credential: TokenCredential = {
    async getToken(scopes, options) {
      asked.push({ scopes, ...(options ? { options } : {}) });
      if (waiting) await new Promise<void>((resolve) => (waiting = resolve));
      if (failing) throw new Error('AADSTS7000215: invalid client secret');
      return { token: `token-${asked.length}`, expiresOnTimestamp: clock.now + HOUR } satisfies AccessToken;
    },
  };
  return {
    credential,
    asked,
    fail: (on: boolean) => {
      failing = on;
    },
    hold: () => {
      waiting = () => {};
    },
    release: () => {
      const go = waiting;
      waiting = undefined;
      go?.();
    },
  };
}

describe('tokens kept until they are due for refresh', () => {
  it('asks once per scope while the token is fresh, and concurrent askers share the request', async () => {
    const clock = { now: 1_000_000 };
    const issuer = issuing(clock);
    const tokens = cachedTokens(issuer.credential, () => clock.now);
    const [a, b] = await Promise.all([
      tokens.getToken('https://api.security.microsoft.com/.default'),
      tokens.getToken('https://api.security.microsoft.com/.default'),
    ]);
    expect(a?.token).toBe('token-1');
    expect(b?.token).toBe('token-1');
    clock.now += HOUR - REFRESH_BEFORE_EXPIRY_MS - 1;
    expect((await tokens.getToken('https://api.security.microsoft.com/.default'))?.token).toBe('token-1');
    expect((await tokens.getToken('https://graph.microsoft.com/.default'))?.token).toBe('token-2');
    expect(issuer.asked.map((x) => x.scopes)).toEqual([
      'https://api.security.microsoft.com/.default',
      'https://graph.microsoft.com/.default',
    ]);
  });

  it('refreshes within five minutes of expiry, keeps the valid token when that fails, and fails once it expired', async () => {
    const clock = { now: 0 };
    const issuer = issuing(clock);
    const tokens = cachedTokens(issuer.credential, () => clock.now);
    const scope = 'https://api.security.microsoft.com/.default';
    expect((await tokens.getToken(scope))?.token).toBe('token-1');
    clock.now = HOUR - REFRESH_BEFORE_EXPIRY_MS;
    expect((await tokens.getToken(scope))?.token).toBe('token-2');
    clock.now += HOUR - REFRESH_BEFORE_EXPIRY_MS + 1;
    issuer.fail(true);
    // Due for refresh but still valid: the refresh fails, the token in hand is used.
    expect((await tokens.getToken(scope))?.token).toBe('token-2');
    expect(issuer.asked).toHaveLength(3);
    clock.now += REFRESH_BEFORE_EXPIRY_MS;
    await expect(tokens.getToken(scope)).rejects.toThrow(/invalid client secret/);
    issuer.fail(false);
    expect((await tokens.getToken(scope))?.token).toBe('token-5');
  });

  it('passes asks with options (a challenge’s claims, another tenant) to the credential every time', async () => {
    const clock = { now: 0 };
    const issuer = issuing(clock);
    const tokens = cachedTokens(issuer.credential, () => clock.now);
    const scope = 'https://graph.microsoft.com/.default';
    await tokens.getToken(scope, { claims: 'eyJhY2Nlc3NfdG9rZW4iOnt9fQ' });
    await tokens.getToken(scope, { claims: 'eyJhY2Nlc3NfdG9rZW4iOnt9fQ' });
    expect(issuer.asked).toHaveLength(2);
    expect(issuer.asked[0]?.options).toEqual({ claims: 'eyJhY2Nlc3NfdG9rZW4iOnt9fQ' });
  });

  it('asks again after a request that failed, rather than keeping the failure', async () => {
    const clock = { now: 0 };
    const issuer = issuing(clock);
    const tokens = cachedTokens(issuer.credential, () => clock.now);
    issuer.fail(true);
    issuer.hold();
    const first = tokens.getToken('s');
    const second = tokens.getToken('s');
    issuer.release();
    await expect(first).rejects.toThrow();
    await expect(second).rejects.toThrow();
    expect(issuer.asked).toHaveLength(1);
    issuer.fail(false);
    expect((await tokens.getToken('s'))?.token).toBe('token-2');
  });
});
