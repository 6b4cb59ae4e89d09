import { BullMqQueue } from '../adapters/bullmq-queue.js';
import { DefenderAssetDirectory } from '../adapters/defender-directory.js';
import { DefenderExecutor } from '../adapters/defender-executor.js';
import { DefenderPacer } from '../adapters/defender-pacer.js';
import { DryRunExecutor } from '../adapters/dry-run-executor.js';
import { GraphIncidentWriter, type IncidentWriter } from '../adapters/graph-incident-writer.js';
import { GraphMailer } from '../adapters/graph-mailer.js';
import type { JobQueue } from '../adapters/job-queue.js';
import { lazyAzureCredential } from '../adapters/lazy-credential.js';
import { LocalQueue } from '../adapters/local-queue.js';
import { MemoryStore } from '../adapters/memory-store.js';
import { createRedisCluster, createRedisConnection } from '../adapters/redis-connection.js';
import { RedisStore } from '../adapters/redis-store.js';
import { StaticAssetDirectory } from '../adapters/static-directory.js';
import { systemClock } from '../adapters/system-clock.js';
import type { ActionStore, AssetDirectory, Clock, Mailer, ResponseExecutor } from '../core/ports.js';
import type { Config } from './config.js';
import type { CardPublisher } from './delivery.js';
import { JOB_LANES } from './jobs.js';
import type { Logger } from './logger.js';

/** Parts a caller (a test, local mode, or the platform wiring) supplies instead of the configured ones. */
export interface RuntimeParts {
  store?: ActionStore;
  storeKind?: 'memory' | 'redis';
  queue?: JobQueue;
  executor?: ResponseExecutor;
  directory?: AssetDirectory;
  clock?: Clock;
  publishers?: CardPublisher[];
  /** Sends the customer-task emails; unset: none are sent, unless MAIL_SENDER is configured. */
  mailer?: Mailer;
  /** Updates the Graph incidents with INCIDENT_WRITEBACK; unset: the Graph writer when configured. */
  incidentWriter?: IncidentWriter;
}

/** Every adapter one bot process runs with, and how to close what was opened for them. */
export interface Adapters {
  store: ActionStore;
  storeKind: 'memory' | 'redis';
  queue: JobQueue;
  executor: ResponseExecutor;
  directory: AssetDirectory;
  clock: Clock;
  publishers: CardPublisher[];
  mailer?: Mailer;
  incidentWriter?: IncidentWriter;
  /** Close the queue and the store, then every connection opened here. */
  close(): Promise<void>;
}

/**
 * The one place adapters are chosen: Redis + BullMQ when `REDIS_URL` is set (else memory and an
 * in-process queue), Defender/Graph when an app registration is configured (the executor only with
 * `DRY_RUN` off; else the dry run), Graph mail with `MAIL_SENDER`, the Graph incident writer with
 * `INCIDENT_WRITEBACK`. Each part given replaces the configured one; what is opened here is closed here.
 */
export function chooseAdapters(config: Config, logger: Logger, parts: RuntimeParts = {}): Adapters {
  const closers: (() => Promise<void>)[] = [];
  /** A Redis connection of its own (cluster or not), closed with the adapters. */
  const ownRedis = (url: string, cluster: boolean) => {
    const client = cluster ? createRedisCluster(url) : createRedisConnection(url);
    client.on('error', () => {});
    closers.push(async () => {
      await client.quit().catch(() => client.disconnect());
    });
    return client;
  };

  let { store, queue } = parts;
  if (config.redis) {
    const { url, keyPrefix, cluster } = config.redis;
    store ??= cluster ? new RedisStore(ownRedis(url, true), keyPrefix) : new RedisStore({ url }, keyPrefix);
    queue ??= new BullMqQueue({ url, keyPrefix, cluster, logger, lanes: JOB_LANES });
  }

  let executor = parts.executor;
  let directory = parts.directory;
  let mailer = parts.mailer;
  let incidentWriter = parts.incidentWriter;
  const { defender } = config;
  if (defender) {
    const credential = lazyAzureCredential(defender);
    const endpoints = { credential, defenderApiUrl: defender.apiUrl, graphApiUrl: defender.graphUrl, logger };
    directory ??= new DefenderAssetDirectory(endpoints);
    if (config.mailSender) {
      mailer ??= new GraphMailer({
        credential,
        graphApiUrl: defender.graphUrl,
        sender: config.mailSender,
        logger,
      });
    }
    if (config.incidentWriteback) {
      incidentWriter ??= new GraphIncidentWriter({ credential, graphApiUrl: defender.graphUrl, logger });
    }
    if (!executor && !config.dryRun) {
      // Machine actions are paced to Defender's per-tenant limits, counted in Redis across replicas.
      const pacer = new DefenderPacer({
        perMinute: config.execution.actionsPerMinute,
        perHour: config.execution.actionsPerHour,
        tenant: defender.tenantId ?? 'default',
        keyPrefix: config.keyPrefix,
        ...(config.redis ? { redis: ownRedis(config.redis.url, config.redis.cluster) } : {}),
      });
      executor = new DefenderExecutor({ ...endpoints, pacer });
    }
  }

  return givenAdapters(
    logger,
    {
      ...parts,
      ...(store ? { store } : {}),
      storeKind: parts.storeKind ?? (config.redis ? 'redis' : 'memory'),
      ...(queue ? { queue } : {}),
      ...(executor ? { executor } : {}),
      ...(directory ? { directory } : {}),
      ...(mailer ? { mailer } : {}),
      ...(incidentWriter ? { incidentWriter } : {}),
    },
    closers,
  );
}

/**
 * The parts given, and for the others what needs no configuration: memory, an in-process queue, the dry
 * run, an empty directory, the system clock, no publisher, no mail. `close` closes the queue and the
 * store, then `closers`.
 */
export function givenAdapters(
  logger: Logger,
  parts: RuntimeParts,
  closers: (() => Promise<void>)[] = [],
): Adapters {
  const store = parts.store ?? new MemoryStore();
  const queue = parts.queue ?? new LocalQueue({ logger });
  return {
    store,
    storeKind: parts.storeKind ?? 'memory',
    queue,
    executor: parts.executor ?? new DryRunExecutor(),
    directory: parts.directory ?? new StaticAssetDirectory(),
    clock: parts.clock ?? systemClock,
    publishers: parts.publishers ?? [],
    ...(parts.mailer ? { mailer: parts.mailer } : {}),
    ...(parts.incidentWriter ? { incidentWriter: parts.incidentWriter } : {}),
    async close() {
      await queue.close();
      await store.close();
      for (const closer of closers) await closer();
    },
  };
}
