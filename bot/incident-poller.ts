import { InvalidInputError, WrongTenantError } from '../core/errors.js';
import { ingestIncident } from '../core/ingest-incident.js';
import { type GraphIncidentFilter, graphFilterOf, selectsIncident } from '../core/policy.js';
import type { IncidentSource } from '../core/ports.js';
import type { Runtime } from './runtime.js';

/** The job of the Graph poll, run every GRAPH_POLL_SECONDS across all replicas (a queue job scheduler). */
export const GRAPH_POLL_JOB = 'graph-poll';

/** The store cursor holding the poll's `lastUpdateDateTime` high-water mark (ISO 8601). */
export const GRAPH_POLL_CURSOR = 'graph-poll';

/** What one poll did. */
export interface PollResult {
  ingested: number;
  /** Read but not selected by `sources.graph.filter`. */
  skipped: number;
  /** The cursor after the poll (unchanged when the reading was incomplete). */
  cursor: string;
  complete: boolean;
}

/**
 * Polls Graph security incidents and ingests the ones the policy selects (`sources.graph.filter`;
 * default: tagged for the managed service) as incidents without managed-response actions: the card shows
 * the incident and keeps any actions and summary already received. The queue runs `pollOnce` once per
 * interval (`intervalSeconds`, GRAPH_POLL_SECONDS) across all replicas.
 *
 * The window starts at the cursor kept in the store: the highest `lastUpdateDateTime` read by the last
 * poll that read every page and ingested every incident (before any, two intervals back). A failed or
 * incomplete poll leaves it where it was, so incidents updated during an outage of Graph or Redis are
 * read once it ends. The incident at the cursor is read again; ingest is idempotent.
 */
export class IncidentPoller {
  constructor(
    private readonly runtime: Pick<Runtime, 'clock' | 'deps' | 'logger' | 'config'>,
    private readonly source: IncidentSource,
    readonly intervalSeconds: number,
  ) {}

  /** One poll; returns how many incidents were ingested. */
  async pollOnce(): Promise<number> {
    return (await this.poll()).ingested;
  }

  async poll(): Promise<PollResult> {
    const { clock, deps, logger } = this.runtime;
    const filter: GraphIncidentFilter = graphFilterOf(this.runtime.config.policy);
    const since = await this.windowStart();
    const batch = await this.source.updatedSince(
      since,
      filter.assignedTo !== undefined ? { assignedTo: filter.assignedTo } : {},
    );
    let highWater = since.getTime();
    let ingested = 0;
    let skipped = 0;
    for (const incident of batch.incidents) {
      const updated = lastUpdateOf(incident);
      // A high-water mark in the future (a skewed clock) would hide later updates: never past now.
      if (updated !== undefined) highWater = Math.max(highWater, Math.min(updated, clock.now().getTime()));
      if (!selectsIncident(filter, incident)) {
        skipped++;
        continue;
      }
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
    let cursor = since.toISOString();
    if (batch.complete) {
      cursor = new Date(highWater).toISOString();
      await deps.store.setCursor(GRAPH_POLL_CURSOR, cursor);
    } else {
      logger.error(
        { pages: batch.pages, read: batch.incidents.length, since: cursor },
        'the Graph incident poll stopped at its page bound before the last page; the cursor stays, and the next poll reads the window again',
      );
    }
    if (skipped > 0) logger.debug({ skipped }, 'polled Graph incidents not selected by sources.graph.filter');
    return { ingested, skipped, cursor, complete: batch.complete };
  }

  private async windowStart(): Promise<Date> {
    const stored = await this.runtime.deps.store.getCursor(GRAPH_POLL_CURSOR);
    const at = stored === null ? Number.NaN : Date.parse(stored);
    if (Number.isFinite(at)) return new Date(at);
    if (stored !== null)
      this.runtime.logger.warn('the stored Graph poll cursor is unreadable; reading two intervals back');
    return new Date(this.runtime.clock.now().getTime() - 2 * this.intervalSeconds * 1_000);
  }
}

function lastUpdateOf(incident: unknown): number | undefined {
  if (typeof incident !== 'object' || incident === null) return undefined;
  const value = (incident as { lastUpdateDateTime?: unknown }).lastUpdateDateTime;
  if (typeof value !== 'string') return undefined;
  const at = Date.parse(value);
  return Number.isFinite(at) ? at : undefined;
}
