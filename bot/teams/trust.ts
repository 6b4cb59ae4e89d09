/**
 * Hosts the Bot Connector answers at (`serviceUrl`): Teams' traffic manager (with its regional paths),
 * Bot Framework, and the US government clouds. Others only when the operator names them
 * (`TEAMS_SERVICE_URL_HOSTS`).
 */
export const BOT_FRAMEWORK_SERVICE_HOSTS: readonly string[] = [
  'smba.trafficmanager.net',
  '*.botframework.com',
  'smba.infra.gcc.teams.microsoft.com',
  'smba.infra.gov.teams.microsoft.us',
  'smba.infra.dod.teams.microsoft.us',
  '*.botframework.us',
  '*.botframework.azure.us',
];

/** What Teams activities and deliveries are held to, from the configuration. */
export interface TeamsTrust {
  /** Bot Framework tokens are checked (an app id is set). */
  authEnabled: boolean;
  /** Local mode: no app id, served to this machine only. */
  localMode: boolean;
  /** The only tenant served (required with an app id). */
  tenantId?: string;
  /** Extra `serviceUrl` hosts (`TEAMS_SERVICE_URL_HOSTS`): `host` or `*.domain`. */
  serviceUrlHosts: readonly string[];
}

/** The tenant an activity or a stored reference belongs to (`channelData.tenant.id`, else `conversation.tenantId`). */
export function tenantOf(activity: {
  channelData?: unknown;
  conversation?: { tenantId?: string };
}): string | undefined {
  const channelData = activity.channelData as { tenant?: { id?: unknown } } | undefined;
  const id = channelData?.tenant?.id ?? activity.conversation?.tenantId;
  return typeof id === 'string' && id ? id.toLowerCase() : undefined;
}

const matchesHost = (host: string, pattern: string) =>
  pattern.startsWith('*.') ? host.endsWith(pattern.slice(1)) : host === pattern;

/**
 * Why the bot may not talk to the Bot Connector at `serviceUrl`, or undefined. With authentication on it
 * must be https on a Bot Framework / Teams host or one the operator named; in local mode any http(s) URL
 * a loopback client gives is used (the Agents Playground and the Emulator run their connector locally).
 */
export function serviceUrlProblem(serviceUrl: unknown, trust: TeamsTrust): string | undefined {
  if (typeof serviceUrl !== 'string' || serviceUrl === '') return 'it has no serviceUrl';
  let url: URL;
  try {
    url = new URL(serviceUrl);
  } catch {
    return 'its serviceUrl is not a URL';
  }
  if (!trust.authEnabled) {
    return url.protocol === 'https:' || url.protocol === 'http:'
      ? undefined
      : 'its serviceUrl is not an http(s) URL';
  }
  if (url.protocol !== 'https:') return `its serviceUrl ${url.origin} is not https`;
  const host = url.hostname.toLowerCase();
  const allowed = [...BOT_FRAMEWORK_SERVICE_HOSTS, ...trust.serviceUrlHosts];
  if (!allowed.some((pattern) => matchesHost(host, pattern)))
    return `its serviceUrl host ${host} is not a Bot Framework / Teams host (add it to TEAMS_SERVICE_URL_HOSTS if it is one)`;
  return undefined;
}

/** Channels served: Teams; in local mode also the Bot Framework Emulator. */
function channelProblem(channelId: unknown, trust: TeamsTrust): string | undefined {
  if (channelId === 'msteams') return undefined;
  if (channelId === 'emulator' && trust.localMode && !trust.authEnabled) return undefined;
  return `its channel ${JSON.stringify(String(channelId).slice(0, 50))} is not msteams${trust.localMode ? ' or emulator' : ''}`;
}

/** Why an activity (authenticated, or from this machine in local mode) may not run, or undefined. */
export function activityProblem(
  activity: {
    channelId?: unknown;
    serviceUrl?: unknown;
    channelData?: unknown;
    conversation?: { tenantId?: string };
  },
  trust: TeamsTrust,
): string | undefined {
  const channel = channelProblem(activity.channelId, trust);
  if (channel) return channel;
  if (trust.tenantId && tenantOf(activity) !== trust.tenantId)
    return 'it comes from another tenant than MicrosoftAppTenantId';
  return serviceUrlProblem(activity.serviceUrl, trust);
}

/**
 * Why a stored conversation reference may not receive cards, or undefined: it must belong to the allowed
 * tenant (references saved before the tenant was kept have none: skipped) and name an allowed serviceUrl.
 */
export function deliveryProblem(
  reference: { serviceUrl?: unknown; conversation?: { tenantId?: string } },
  trust: TeamsTrust,
): string | undefined {
  if (trust.tenantId) {
    const tenant = reference.conversation?.tenantId?.toLowerCase();
    if (!tenant)
      return 'the stored conversation names no tenant (saved by an older version: re-add the app there)';
    if (tenant !== trust.tenantId)
      return 'the stored conversation belongs to another tenant than MicrosoftAppTenantId';
  }
  return serviceUrlProblem(reference.serviceUrl, trust);
}

/** The trust settings of a configuration. */
export function teamsTrustOf(config: {
  localMode: boolean;
  teams: { authEnabled: boolean; tenantId?: string; serviceUrlHosts: string[] };
}): TeamsTrust {
  return {
    authEnabled: config.teams.authEnabled,
    localMode: config.localMode,
    ...(config.teams.tenantId ? { tenantId: config.teams.tenantId.toLowerCase() } : {}),
    serviceUrlHosts: config.teams.serviceUrlHosts,
  };
}
