import type { TokenCredential } from '@azure/identity';
import { z } from 'zod';
import { MdrError } from '../core/errors.js';
import type { IncidentBatch, IncidentQuery, IncidentSource } from '../core/ports.js';
import { ApiClient, odataString, type RetryOptions } from './defender-http.js';

/** Where the poller reads incidents: Microsoft Graph security incidents with their alerts. */
export interface GraphIncidentSourceOptions extends RetryOptions {
  credential: TokenCredential;
  graphApiUrl: string;
  /**
   * A safety bound on the pages followed in one poll (default 1,000 pages of `pageSize` incidents). A
   * poll that reaches it reports itself incomplete, so the poller keeps its cursor where it was.
   */
  maxPages?: number;
  pageSize?: number;
}

const page = z.looseObject({
  value: z.array(z.unknown()).default([]),
  '@odata.nextLink': z.string().nullish(),
});

/**
 * Reads `GET /v1.0/security/incidents?$expand=alerts&$filter=lastUpdateDateTime ge ...` page by page
 * through `@odata.nextLink` (SecurityIncident.Read.All), with `Prefer: include-unknown-enum-members` so
 * statuses added after the enum was first published (`awaitingAction`) arrive as such. Graph filters
 * incidents on `assignedTo`, `lastUpdateDateTime` and a few others, not on tags. A failure throws with
 * a readable, secret-free reason.
 */
export class GraphIncidentSource implements IncidentSource {
  private readonly graph: ApiClient;
  private readonly maxPages: number;
  private readonly pageSize: number;

  constructor(options: GraphIncidentSourceOptions) {
    const { credential, graphApiUrl, ...rest } = options;
    this.graph = new ApiClient(credential, { service: 'Microsoft Graph', baseUrl: graphApiUrl }, rest);
    this.maxPages = options.maxPages ?? 1_000;
    this.pageSize = options.pageSize ?? 50;
  }

  /** Incidents updated at or after `since`, as Graph returns them (parsed later by the ingest use case). */
  async updatedSince(since: Date, query: IncidentQuery = {}): Promise<IncidentBatch> {
    const incidents: unknown[] = [];
    const filter = [`lastUpdateDateTime ge ${since.toISOString()}`];
    if (query.assignedTo !== undefined) filter.push(`assignedTo eq ${odataString(query.assignedTo)}`);
    let path = '/v1.0/security/incidents';
    let params: Record<string, string> | undefined = {
      $expand: 'alerts',
      $filter: filter.join(' and '),
      $top: String(this.pageSize),
    };
    for (let pages = 1; ; pages++) {
      const result = await this.graph.call(
        {
          method: 'GET',
          path,
          headers: { prefer: 'include-unknown-enum-members' },
          ...(params ? { query: params } : {}),
        },
        {
          what: 'listing security incidents',
          permission: 'SecurityIncident.Read.All',
          notFound: 'the security incidents API was not found',
        },
      );
      if (!result.ok) throw new MdrError('upstream_failed', result.reason);
      const body = page.safeParse(result.body);
      if (!body.success)
        throw new MdrError(
          'upstream_failed',
          'Microsoft Graph answered the incident list with an unexpected shape',
        );
      incidents.push(...body.data.value);
      const next = body.data['@odata.nextLink'];
      if (!next) return { incidents, complete: true, pages };
      if (!this.graph.sameOrigin(next))
        throw new MdrError(
          'upstream_failed',
          'Microsoft Graph answered the incident list with a next page on another origin',
        );
      if (pages >= this.maxPages) return { incidents, complete: false, pages };
      path = next;
      params = undefined;
    }
  }
}
