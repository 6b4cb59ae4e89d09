import { InvalidInputError, WrongTenantError } from '../core/errors.js';
import { ingestIncident } from '../core/ingest-incident.js';
import type { Runtime } from './runtime.js';

/** Where polled incidents come from (Microsoft Graph in production). */
export interface IncidentSource {
  updatedSince(since: Date): Promise<unknown[]>;
}

const POLL_LEASE = 'graph-poll';

/**
 * Polls Graph security incidents every `intervalSeconds` (GRAPH_POLL_SECONDS) and ingests each one as
 * an incident without managed-response actions: the card shows the incident and keeps any actions and
 * summary already received. One replica polls per interval (a lease in the store); windows overlap, and
 * ingest is idempotent.
 */
export class IncidentPoller {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly runtime: Runtime,
    private readonly source: IncidentSource,
    private readonly intervalSeconds: number,
  ) {}

  start(): void {
    const tick = () => {
      this.running = this.pollOnce().catch((error: unknown) =>
        this.runtime.logger.warn(
          { err: (error as Error).message },
          'polling Graph security incidents failed; will retry',
        ),
      );
    };
    tick();
    this.timer = setInterval(tick, this.intervalSeconds * 1_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** One poll; returns how many incidents were ingested (0 when another replica holds the lease). */
  async pollOnce(): Promise<number> {
    const { store, clock, deps, logger } = this.runtime;
    const intervalMs = this.intervalSeconds * 1_000;
    if (!(await store.tryLock(POLL_LEASE, Math.max(1_000, intervalMs - 500)))) return 0;
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
