import type { TokenCredential } from '@azure/identity';
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
  return {
    async getToken(...args: Parameters<TokenCredential['getToken']>) {
      real ??= import('./azure-credential.js').then((m) => m.createAzureCredential(config));
      return (await real).getToken(...args);
    },
  };
}
