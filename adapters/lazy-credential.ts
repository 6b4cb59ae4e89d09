import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/identity';
import { MdrError } from '../core/errors.js';
import type { AzureCredentialConfig } from './azure-credential.js';

/**
 * `createAzureCredential`, with `@azure/identity` (about 20 MB of modules) loaded on the first token
 * asked for instead of at start: a bot that has not yet called Defender or Graph does not hold it. The
 * configuration is checked at once, as `createAzureCredential` does.
 */
export function lazyAzureCredential(config: AzureCredentialConfig): TokenCredential {
  if (config.clientSecret && (!config.tenantId || !config.clientId)) {
    throw new MdrError(
      'config_invalid',
      'DEFENDER_CLIENT_SECRET is set: DEFENDER_TENANT_ID and DEFENDER_CLIENT_ID are needed too',
    );
  }
  let real: Promise<TokenCredential> | undefined;
  return cachedTokens({
    async getToken(...args: Parameters<TokenCredential['getToken']>) {
      real ??= import('./azure-credential.js').then((m) => m.createAzureCredential(config));
      return (await real).getToken(...args);
    },
  });
}

/** A token is asked for again this long before it expires (unless it names its own refresh time). */
export const REFRESH_BEFORE_EXPIRY_MS = 5 * 60_000;

/**
 * `credential` with each scope's token kept until it is due for refresh, as Azure SDK clients keep them
 * (`bearerTokenAuthenticationPolicy`): the identity library's own cache lookup costs more CPU than the
 * Defender call it authorizes. Concurrent askers share one request; a refresh that fails while the
 * token is still valid leaves that token in use (the next call asks again). Asks with options (claims
 * of a challenge, another tenant, a signal) go to `credential` unchanged.
 */
export function cachedTokens(credential: TokenCredential, now: () => number = Date.now): TokenCredential {
  const held = new Map<string, AccessToken>();
  const asking = new Map<string, Promise<AccessToken | null>>();
  const ask = (key: string, scopes: string | string[]) => {
    let pending = asking.get(key);
    if (!pending) {
      pending = credential
        .getToken(scopes)
        .then((token) => {
          if (token) held.set(key, token);
          return token;
        })
        .finally(() => asking.delete(key));
      asking.set(key, pending);
    }
    return pending;
  };
  return {
    async getToken(scopes: string | string[], options?: GetTokenOptions) {
      if (options && Object.values(options).some((value) => value !== undefined))
        return credential.getToken(scopes, options);
      const key = Array.isArray(scopes) ? scopes.join(' ') : scopes;
      const token = held.get(key);
      const at = now();
      if (token && at < token.expiresOnTimestamp) {
        const refreshAt = token.refreshAfterTimestamp ?? token.expiresOnTimestamp - REFRESH_BEFORE_EXPIRY_MS;
        if (at < refreshAt) return token;
        return ask(key, scopes).then(
          (fresh) => fresh ?? token,
          () => token,
        );
      }
      return ask(key, scopes);
    },
  };
}
