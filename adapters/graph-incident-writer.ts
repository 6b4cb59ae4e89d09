import type { TokenCredential } from '@azure/identity';
import { z } from 'zod';
import type { GraphIncidentView, IncidentPatch } from '../core/incident-writeback.js';
import {
  type AdapterLogger,
  ApiClient,
  type ApiFailure,
  type FailureWording,
  isPassing,
  type RetryOptions,
} from './defender-http.js';

/** A call that did not succeed: whether to try again, and when Graph asked to. */
export interface WriteFailure {
  ok: false;
  reason: string;
  /** 429, 5xx or no answer: worth another try later. */
  transient: boolean;
  /** A 429: Graph did not act on the request and asks every call of the app to wait. */
  throttled?: boolean;
  /** A 429's (or 503's) `Retry-After`, in ms. */
  retryAfterMs?: number;
}

export type ReadResult = { ok: true; incident: GraphIncidentView } | WriteFailure;
export type PatchResult = { ok: true } | WriteFailure;

/** Reads and updates Graph security incidents (the managed status write-back). */
export interface IncidentWriter {
  read(incidentId: string): Promise<ReadResult>;
  update(incidentId: string, patch: IncidentPatch): Promise<PatchResult>;
}

export interface GraphIncidentWriterOptions extends RetryOptions {
  credential: TokenCredential;
  graphApiUrl: string;
  logger?: AdapterLogger;
}

const incidentView = z.looseObject({
  customTags: z
    .array(z.string())
    .nullish()
    .transform((v) => v ?? []),
  assignedTo: z
    .string()
    .nullish()
    .transform((v) => v ?? null),
});

const PERMISSION = 'SecurityIncident.ReadWrite.All';

/**
 * The Graph incident's custom tags and owner, kept in step with the managed status:
 * - `GET /v1.0/security/incidents/{id}` reads `customTags` and `assignedTo`
 *   (https://learn.microsoft.com/en-us/graph/api/security-incident-get?view=graph-rest-1.0);
 * - `PATCH /v1.0/security/incidents/{id}` with only the properties to change, of `assignedTo` (string,
 *   free text), `classification`, `determination`, `status`, `customTags` (string collection, sent
 *   whole), answered `200 OK` with the incident; application permission SecurityIncident.ReadWrite.All
 *   (https://learn.microsoft.com/en-us/graph/api/security-incident-update?view=graph-rest-1.0).
 * Both calls are listed with their permission in docs/api-calls.md.
 * Each call is one attempt: the caller re-queues after a 429 (its Retry-After) or a 5xx (back-off), so
 * no worker waits on Graph.
 */
export class GraphIncidentWriter implements IncidentWriter {
  private readonly graph: ApiClient;

  constructor(options: GraphIncidentWriterOptions) {
    const { credential, graphApiUrl, ...rest } = options;
    this.graph = new ApiClient(credential, { service: 'Microsoft Graph', baseUrl: graphApiUrl }, rest);
  }

  async read(incidentId: string): Promise<ReadResult> {
    const result = await this.graph.call(
      { method: 'GET', path: this.path(incidentId), retries: 0, on429: 'return' },
      this.wording(incidentId, 'GET security incident'),
    );
    if (!result.ok) return failure(result);
    const parsed = incidentView.safeParse(result.body);
    if (parsed.success) return { ok: true, incident: parsed.data };
    return {
      ok: false,
      transient: false,
      reason: 'Microsoft Graph returned an incident without readable customTags',
    };
  }

  async update(incidentId: string, patch: IncidentPatch): Promise<PatchResult> {
    const result = await this.graph.call(
      { method: 'PATCH', path: this.path(incidentId), body: patch, retries: 0, on429: 'return' },
      this.wording(incidentId, 'PATCH security incident'),
    );
    return result.ok ? { ok: true } : failure(result);
  }

  private path(incidentId: string): string {
    return `/v1.0/security/incidents/${encodeURIComponent(incidentId)}`;
  }

  private wording(incidentId: string, what: string): FailureWording {
    return {
      permission: PERMISSION,
      notFound: `the security incident ${incidentId} was not found in Microsoft Graph`,
      what,
    };
  }
}

/** A failed call as the write-back sees it: a 429 or 5xx, or no answer, is worth another try. */
function failure(result: ApiFailure): WriteFailure {
  const transient = isPassing(result, true);
  const wait = transient ? result.retryAfter : undefined;
  return {
    ok: false,
    reason: result.reason,
    transient,
    ...(result.status === 429 ? { throttled: true } : {}),
    ...(wait !== undefined ? { retryAfterMs: wait } : {}),
  };
}
