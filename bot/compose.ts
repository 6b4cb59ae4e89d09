import { PreviewOutbox } from '../adapters/graph-mailer.js';
import { StaticAssetDirectory } from '../adapters/static-directory.js';
import type { DirectoryUser } from '../core/ports.js';
import { chooseAdapters, type RuntimeParts } from './adapters.js';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import { assembleRuntime, type Runtime } from './runtime.js';

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
 * Build the runtime the configuration asks for (adapters chosen by `chooseAdapters`; in local mode the
 * demo directory, and emails shown on the preview page instead of sent). `parts` replace any of them
 * (tests).
 */
export function buildRuntime(config: Config, logger: Logger, parts: RuntimeParts = {}): Runtime {
  const demo: RuntimeParts = config.localMode
    ? {
        directory: new StaticAssetDirectory(DEMO_GROUPS, DEMO_USERS),
        mailer: new PreviewOutbox(config.mailSender ?? 'mdr-bot@localhost'),
      }
    : {};
  return assembleRuntime(config, logger, chooseAdapters(config, logger, { ...demo, ...parts }));
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
