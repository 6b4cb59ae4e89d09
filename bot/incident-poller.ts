import { InvalidInputError, WrongTenantError } from '../core/errors.js';
import { ingestIncident } from '../core/ingest-incident.js';
import type { Runtime } from './runtime.js';

/** Where polled incidents come from (Microsoft Graph in production). */
export interface IncidentSource {
  updatedSince(since: Date): Promise<unknown[]>;
}

/** The job of the Graph poll, run every GRAPH_POLL_SECONDS across all replicas (a queue job scheduler). */
export const GRAPH_POLL_JOB = 'graph-poll';

/**
 * Polls Graph security incidents and ingests each one as an incident without managed-response actions:
 * the card shows the incident and keeps any actions and summary already received. The queue runs
 * `pollOnce` once per interval (`intervalSeconds`, GRAPH_POLL_SECONDS) across all replicas; windows
 * overlap, and ingest is idempotent.
 */
export class IncidentPoller {
  constructor(
    private readonly runtime: Pick<Runtime, 'clock' | 'deps' | 'logger'>,
    private readonly source: IncidentSource,
    readonly intervalSeconds: number,
  ) {}

  /** One poll; returns how many incidents were ingested. */
  async pollOnce(): Promise<number> {
    const { clock, deps, logger } = this.runtime;
    const intervalMs = this.intervalSeconds * 1_000;
    const since = new Date(clock.now().getTime() - 2 * intervalMs);
    const incidents = await this.source.updatedSince(since);
    let ingested = 0;
    for (const incident of incidents) {
      try {
        await ingestIncident(
          deps,
          { incident, managedResponse: { actions: [] } },
          { id: 'system:graph-poll', platform: 'system' },
        );
        ingested++;
      } catch (error) {
        if (error instanceof WrongTenantError) {
          logger.warn({ err: error.message }, 'skipped a polled Graph incident of another tenant (audited)');
          continue;
        }
        if (!(error instanceof InvalidInputError)) throw error;
        logger.warn({ problems: error.issues }, 'skipped a polled Graph incident that does not parse');
      }
    }
    return ingested;
  }
}
