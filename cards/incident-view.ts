import { portalUrlOf } from '../core/incident.js';
import { managedStatus } from '../core/managed-status.js';
import type { ActionRecord, IncidentState } from '../core/model.js';
import { LIFECYCLE, type StateMeaning } from '../core/state-machine.js';
import { actionLine } from './action-line.js';
import { assetGroups } from './assets.js';
import { GROUP_ORDER, GROUP_PRIORITY, GROUP_TITLES, SEVERITY, STATUS } from './labels.js';
import { apiLink, cleanText, cut, formatWhen, hostsOf, safeUrl } from './text.js';
import type { ActionGroupKey, ActionGroupView, IncidentCardView } from './view-types.js';

/** Options of buildIncidentView. */
export interface BuildIncidentViewOptions {
  /** Base URL of this bot's REST API; links "and N more" to `/api/incidents/{id}`. */
  apiBaseUrl?: string;
  /** Reference time for "10:42 UTC" vs "14 Mar 10:42 UTC" (default: the current time). */
  now?: Date;
  /** At most this many action lines in all (default 20), actionable groups first. */
  maxActions?: number;
  /** At most this many lines in one group (default 10). */
  maxPerGroup?: number;
  /** At most this many assets of one kind (default 5). */
  maxAssetsPerKind?: number;
  /** The summary is cut to this many characters (default 1,200). */
  maxSummary?: number;
}

const TITLE_MAX = 200;

/** Build the typed view model of an incident's card from its stored state. */
export function buildIncidentView(
  state: IncidentState,
  options: BuildIncidentViewOptions = {},
): IncidentCardView {
  const now = options.now ?? new Date();
  const { incident } = state;
  const maxActions = options.maxActions ?? 20;
  const maxPerGroup = options.maxPerGroup ?? 10;
  const maxAssets = options.maxAssetsPerKind ?? 5;
  // Checked again here for records stored before the ingest checked it: one rule, in core.
  const portalUrl = safeUrl(portalUrlOf(incident.id, incident.portalUrl, hostsOf(options.apiBaseUrl)));
  const apiUrl = apiLink(options.apiBaseUrl, `/api/incidents/${encodeURIComponent(incident.id)}`);

  const byGroup = new Map<ActionGroupKey, ActionRecord[]>(GROUP_ORDER.map((k) => [k, []]));
  for (const action of state.actions) byGroup.get(LIFECYCLE[action.state].stage)?.push(action);

  const shown = new Map<ActionGroupKey, number>();
  let budget = maxActions;
  for (const key of GROUP_PRIORITY) {
    const n = Math.min(byGroup.get(key)?.length ?? 0, maxPerGroup, budget);
    shown.set(key, n);
    budget -= n;
  }

  const groups = GROUP_ORDER.flatMap((key): ActionGroupView[] => {
    const all = byGroup.get(key) ?? [];
    if (all.length === 0) return [];
    const n = shown.get(key) ?? 0;
    return [
      {
        key,
        title: GROUP_TITLES[key],
        total: all.length,
        items: all.slice(0, n).map((a) => actionLine(a, incident, now, portalUrl)),
        more: all.length - n,
      },
    ];
  });

  const summaryMax = options.maxSummary ?? 1_200;
  const summaryText = cleanText(incident.summary, true);
  return {
    incidentId: incident.id,
    title: cut(cleanText(incident.title) || `Incident ${incident.id}`, TITLE_MAX),
    severity: SEVERITY[incident.severity] ?? SEVERITY.unknown,
    status: STATUS[managedStatus(state.actions)],
    ...(portalUrl ? { portalUrl } : {}),
    ...(apiUrl ? { apiUrl } : {}),
    ...((apiUrl ?? portalUrl) ? { moreUrl: apiUrl ?? portalUrl } : {}),
    receivedAt: formatWhen(incident.receivedAt, now),
    assets: assetGroups(incident, maxAssets),
    summary: { text: cut(summaryText, summaryMax), cut: summaryText.length > summaryMax },
    groups,
    counts: openCounts(state.actions),
  };
}

/** The card's counts: open work only (a closed customer task, done or skipped, is not counted). */
function openCounts(actions: readonly ActionRecord[]): IncidentCardView['counts'] {
  const count = (test: (meaning: StateMeaning) => boolean) =>
    actions.filter((a) => test(LIFECYCLE[a.state])).length;
  return {
    open: count((m) => m.openFor !== null),
    failed: count((m) => m.stage === 'failed'),
    needExpert: count((m) => m.openFor === 'expert' && m.stage !== 'failed'),
    needCustomer: count((m) => m.openFor === 'customer'),
  };
}
