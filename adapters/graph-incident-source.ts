import type { TokenCredential } from '@azure/identity';
import { z } from 'zod';
import { ApiClient, describeFailure, type RetryOptions } from './defender-http.js';

/** Where the poller reads incidents: Microsoft Graph security incidents with their alerts. */
export interface GraphIncidentSourceOptions extends RetryOptions {
  credential: TokenCredential;
  graphApiUrl: string;
  /** Pages followed per poll at most (default 20, of `pageSize` incidents each). */
  maxPages?: number;
  pageSize?: number;
}

const page = z.looseObject({
  value: z.array(z.unknown()).default([]),
  '@odata.nextLink': z.string().nullish(),
});

/**
 * Reads `GET /v1.0/security/incidents?$expand=alerts&$filter=lastUpdateDateTime ge ...` page by page
 * (SecurityIncident.Read.All). A failure throws with a readable, secret-free reason.
 */
export class GraphIncidentSource {
  private readonly graph: ApiClient;
  private readonly maxPages: number;
  private readonly pageSize: number;

  constructor(options: GraphIncidentSourceOptions) {
    const { credential, graphApiUrl, ...rest } = options;
    this.graph = new ApiClient(credential, { service: 'Microsoft Graph', baseUrl: graphApiUrl }, rest);
    this.maxPages = options.maxPages ?? 20;
    this.pageSize = options.pageSize ?? 50;
  }

  /** Incidents updated at or after `since`, as Graph returns them (parsed later by the ingest use case). */
  async updatedSince(since: Date): Promise<unknown[]> {
    const incidents: unknown[] = [];
    let path = '/v1.0/security/incidents';
    let query: Record<string, string> | undefined = {
      $expand: 'alerts',
      $filter: `lastUpdateDateTime ge ${since.toISOString()}`,
      $top: String(this.pageSize),
    };
    for (let pages = 0; pages < this.maxPages; pages++) {
      const result = await this.graph.send({ method: 'GET', path, ...(query ? { query } : {}) });
      if (result.kind !== 'response' || !result.ok) {
        throw new Error(
          describeFailure('Microsoft Graph', result, {
            what: 'listing security incidents',
            permission: 'SecurityIncident.Read.All',
            notFound: 'the security incidents API was not found',
          }),
        );
      }
      const body = page.safeParse(result.body);
      if (!body.success)
        throw new Error('Microsoft Graph answered the incident list with an unexpected shape');
      incidents.push(...body.data.value);
      const next = body.data['@odata.nextLink'];
      if (!next || !this.graph.sameOrigin(next)) break;
      path = next;
      query = undefined;
    }
    return incidents;
  }
}
