import { createAzureCredential } from '../adapters/azure-credential.js';
import { BullMqQueue } from '../adapters/bullmq-queue.js';
import { DefenderAssetDirectory } from '../adapters/defender-directory.js';
import { DefenderExecutor } from '../adapters/defender-executor.js';
import { DefenderPacer } from '../adapters/defender-pacer.js';
import { DryRunExecutor } from '../adapters/dry-run-executor.js';
import { GraphIncidentWriter, type IncidentWriter } from '../adapters/graph-incident-writer.js';
import { GraphMailer, PreviewOutbox } from '../adapters/graph-mailer.js';
import type { JobQueue } from '../adapters/job-queue.js';
import { LocalQueue } from '../adapters/local-queue.js';
import { MemoryStore } from '../adapters/memory-store.js';
import { createRedisCluster, createRedisConnection } from '../adapters/redis-connection.js';
import { RedisStore } from '../adapters/redis-store.js';
import { StaticAssetDirectory } from '../adapters/static-directory.js';
import type { ActionStore, AssetDirectory, DirectoryUser, Mailer, ResponseExecutor } from '../core/ports.js';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import { assembleRuntime, JOB_LANES, type Runtime, type RuntimeParts } from './runtime.js';

/** Local mode's demo user groups, so the `Executives` exclusion of the demo policy has members. */
const DEMO_GROUPS: Record<string, string[]> = { 'ceo@contoso.com': ['Executives'] };

/** Local mode's demo directory: the CEO the demo policy excludes, with an alias to show alias matching. */
const DEMO_USERS: DirectoryUser[] = [
  {
    id: '0c1e0000-0000-4000-8000-00000000ce00',
    userPrincipalName: 'ceo@contoso.com',
    mail: 'ceo@contoso.com',
    proxyAddresses: ['SMTP:ceo@contoso.com', 'smtp:office.of.the.ceo@contoso.com'],
  },
];

/**
 * Build the runtime the configuration asks for: Redis + BullMQ when `REDIS_URL` is set (else memory and
 * an in-process queue), Defender/Graph when an app registration is configured and `DRY_RUN` is off
 * (else the dry-run executor). `parts` replace any of them (tests).
 */
export function buildRuntime(config: Config, logger: Logger, parts: Partial<RuntimeParts> = {}): Runtime {
  let store: ActionStore;
  let queue: JobQueue;
  const closers: (() => Promise<void>)[] = [];
  if (config.redis) {
    const { url, keyPrefix, cluster } = config.redis;
    if (!parts.store && cluster) {
      const client = createRedisCluster(url);
      client.on('error', () => {});
      closers.push(async () => {
        await client.quit().catch(() => client.disconnect());
      });
      store = new RedisStore(client, keyPrefix);
    } else {
      store = parts.store ?? new RedisStore({ url }, keyPrefix);
    }
    queue = parts.queue ?? new BullMqQueue({ url, keyPrefix, cluster, logger, lanes: JOB_LANES });
  } else {
    store = parts.store ?? new MemoryStore();
    queue = parts.queue ?? new LocalQueue({ logger });
  }

  let executor: ResponseExecutor;
  let directory: AssetDirectory;
  // Local mode shows the emails on the preview page; elsewhere MAIL_SENDER sends them through Graph.
  let mailer: Mailer | undefined = config.localMode
    ? new PreviewOutbox(config.mailSender ?? 'mdr-bot@localhost')
    : undefined;
  let incidentWriter: IncidentWriter | undefined;
  if (config.defender) {
    const credential = createAzureCredential(config.defender);
    const endpoints = {
      credential,
      defenderApiUrl: config.defender.apiUrl,
      graphApiUrl: config.defender.graphUrl,
      logger,
    };
    directory = parts.directory ?? new DefenderAssetDirectory(endpoints);
    if (config.mailSender)
      mailer = new GraphMailer({
        credential,
        graphApiUrl: config.defender.graphUrl,
        sender: config.mailSender,
        logger,
      });
    if (config.incidentWriteback)
      incidentWriter = new GraphIncidentWriter({ credential, graphApiUrl: config.defender.graphUrl, logger });
    // Machine actions are paced to Defender's per-tenant limits, counted in Redis across replicas.
    const pacedExecutor = () => {
      const redis = config.redis
        ? config.redis.cluster
          ? createRedisCluster(config.redis.url)
          : createRedisConnection(config.redis.url)
        : undefined;
      if (redis) {
        redis.on('error', () => {});
        closers.push(async () => {
          await redis.quit().catch(() => redis.disconnect());
        });
      }
      const pacer = new DefenderPacer({
        perMinute: config.execution.actionsPerMinute,
        perHour: config.execution.actionsPerHour,
        tenant: config.defender?.tenantId ?? 'default',
        keyPrefix: config.keyPrefix,
        ...(redis ? { redis } : {}),
      });
      return new DefenderExecutor({ ...endpoints, pacer });
    };
    executor = parts.executor ?? (config.dryRun ? new DryRunExecutor() : pacedExecutor());
  } else {
    directory =
      (parts.directory ?? config.localMode)
        ? new StaticAssetDirectory(DEMO_GROUPS, DEMO_USERS)
        : new StaticAssetDirectory();
    executor = parts.executor ?? new DryRunExecutor();
  }

  const runtime = assembleRuntime(config, logger, {
    ...parts,
    store,
    storeKind: config.redis ? 'redis' : 'memory',
    queue,
    executor,
    directory,
    ...((parts.mailer ?? mailer) ? { mailer: parts.mailer ?? mailer } : {}),
    ...((parts.incidentWriter ?? incidentWriter)
      ? { incidentWriter: parts.incidentWriter ?? incidentWriter }
      : {}),
  });
  const close = runtime.close;
  runtime.close = async () => {
    await close();
    for (const closer of closers) await closer();
  };
  return runtime;
}

/** One line per capability: what runs, what is off and why, and what is not durable. */
export function describeRuntime(runtime: Runtime): string[] {
  const { config } = runtime;
  const lines = [
    config.redis
      ? `store: Redis (${redactUrl(config.redis.url)}, prefix ${config.redis.keyPrefix}), jobs: BullMQ`
      : 'store: in memory, jobs: in process. NOT durable: state is lost on restart and cannot be shared by replicas (set REDIS_URL)',
    runtime.executor.dryRun
      ? 'executor: dry run: actions are recorded, nothing is called in Defender or Graph'
      : `executor: Defender ${config.defender?.apiUrl} and Graph ${config.defender?.graphUrl}, machine actions paced at ${config.execution.actionsPerMinute} a minute and ${config.execution.actionsPerHour} an hour per action type`,
    config.slack
      ? `slack: on${config.slack.appToken ? ' over Socket Mode (POST /slack/events answers 404)' : ''}, cards to channel ${config.policy.channels.slack ?? '(none: set channels.slack in the policy)'}`
      : 'slack: off (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET, or SLACK_BOT_TOKEN and SLACK_APP_TOKEN for Socket Mode)',
    config.teams.authEnabled
      ? `teams: on, app ${config.teams.appId}, tenant ${config.teams.tenantId}`
      : config.localMode
        ? 'teams: local mode, without authentication, for this machine only (set MicrosoftAppId, MicrosoftAppPassword and MicrosoftAppTenantId for a real tenant)'
        : 'teams: off (set MicrosoftAppId, MicrosoftAppPassword and MicrosoftAppTenantId to turn it on)',
    runtime.deps.mailer instanceof PreviewOutbox
      ? 'email: shown on the preview page, not sent (local mode)'
      : runtime.deps.mailer
        ? `email: as ${config.mailSender} to ${(config.policy.notifications?.email ?? []).length} address(es) of the policy`
        : 'email: off (set MAIL_SENDER and notifications.email in the policy)',
    config.incidentWriteback
      ? config.localMode
        ? 'incident write-back: off in local mode (no Graph incidents to update)'
        : `incident write-back: on, MDR: tags${config.policy.notifications?.assignTo ? ` and assignedTo "${config.policy.notifications.assignTo}" while customer tasks are open` : ''} (SecurityIncident.ReadWrite.All)`
      : 'incident write-back: off (set INCIDENT_WRITEBACK=true)',
    config.ingestToken ? 'ingest API: on' : 'ingest API: off (set INGEST_TOKEN)',
    config.adminToken ? 'exclusions API: on' : 'exclusions API: off (set ADMIN_TOKEN)',
    config.policyFile
      ? `policy: ${config.policyFile}`
      : config.localMode
        ? 'policy: built-in demo policy'
        : 'policy: none (set POLICY_FILE): nobody may approve',
  ];
  const { actionsPerMinute, actionsPerHour } = config.execution;
  if (!runtime.executor.dryRun && (actionsPerMinute > 100 || actionsPerHour > 1_500)) {
    lines.push(
      `DEFENDER_ACTIONS_PER_MINUTE=${actionsPerMinute} / DEFENDER_ACTIONS_PER_HOUR=${actionsPerHour} are above Defender's documented 100 a minute and 1,500 an hour: expect 429s (actions then wait for Retry-After, as queued)`,
    );
  }
  if (config.allowInsecureUrls && !config.localMode) {
    lines.push(
      `ALLOW_INSECURE_URLS=true: http:// base URLs are allowed, so tokens may travel in clear (tests only)${
        config.insecureUrls.length > 0 ? `; in use: ${config.insecureUrls.join(', ')}` : ''
      }`,
    );
  }
  return lines;
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'redis';
  }
}
