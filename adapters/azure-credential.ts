import { ClientSecretCredential, DefaultAzureCredential, type TokenCredential } from '@azure/identity';
import { MdrError } from '../core/errors.js';

/** The public cloud's authority; any other one (sovereign cloud, test server) skips instance discovery. */
export const PUBLIC_AUTHORITY_HOST = 'https://login.microsoftonline.com';

/** What the app registration used to act is configured with (`DEFENDER_*`, `AZURE_AUTHORITY_HOST`). */
export interface AzureCredentialConfig {
  tenantId?: string;
  clientId?: string;
  /** Set: client-credentials flow. Unset: managed or workload identity (DefaultAzureCredential). */
  clientSecret?: string;
  authorityHost?: string;
}

/**
 * One `TokenCredential` for Defender and Graph. The library caches tokens per scope, so callers ask for
 * a token on every request. Secrets are handed to the library only, never logged.
 */
export function createAzureCredential(config: AzureCredentialConfig): TokenCredential {
  const authorityHost = (config.authorityHost ?? PUBLIC_AUTHORITY_HOST).replace(/\/+$/, '');
  if (config.clientSecret) {
    if (!config.tenantId || !config.clientId) {
      throw new MdrError(
        'config_invalid',
        'DEFENDER_CLIENT_SECRET is set: DEFENDER_TENANT_ID and DEFENDER_CLIENT_ID are needed too',
      );
    }
    return new ClientSecretCredential(config.tenantId, config.clientId, config.clientSecret, {
      authorityHost,
      // MSAL's instance discovery always asks the public cloud, which fails for any other authority.
      disableInstanceDiscovery: authorityHost !== PUBLIC_AUTHORITY_HOST,
    });
  }
  return new DefaultAzureCredential({
    authorityHost,
    ...(config.tenantId ? { tenantId: config.tenantId } : {}),
    ...(config.clientId
      ? { managedIdentityClientId: config.clientId, workloadIdentityClientId: config.clientId }
      : {}),
  });
}

// Kept apart, so that the Defender and Graph clients know their scope without loading the identity library.
export { scopeFor } from './azure-scope.js';
