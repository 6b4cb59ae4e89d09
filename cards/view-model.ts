import {
  ACTION_CATALOGUE,
  type ActionState,
  type ActionType,
  releaseFromQuarantineSteps,
  type ScanType,
} from '../core/actions.js';
import { assetName, deviceNameOf } from '../core/asset-name.js';
import type { ButtonVerb } from '../core/button-verbs.js';
import { portalUrlOf } from '../core/incident.js';
import { type ManagedStatus, managedStatus } from '../core/managed-status.js';
import type {
  ActionRecord,
  ActionTarget,
  IncidentRecord,
  IncidentState,
  Severity,
  Task,
} from '../core/model.js';
import { type ActionStage, LIFECYCLE, type StateMeaning } from '../core/state-machine.js';
import { guidanceOf, taskIdOf } from '../core/tasks.js';

/** A colour both platforms can show: Adaptive Card colour names, with a hex value for HTML previews. */
export type Tone = 'default' | 'good' | 'warning' | 'attention' | 'accent';

/**
 * Who a button is meant for; the core decides at click time, the card only chooses what to show.
 * `admin`: the customer's admins (who are customers too, so they also see the customer's buttons).
 */
export type Audience = 'expert' | 'customer' | 'admin';

/** A button on an action line; its payload is only ever the incident id and the action id. */
export interface ButtonView {
  verb: ButtonVerb;
  label: string;
  audience: Audience;
  style: 'primary' | 'danger' | 'default';
  /** Asked before a destructive approval: names the action and the asset. */
  confirm?: { title: string; text: string; confirm: string; deny: string };
  /**
   * A choice sent with the click (the antivirus scan to run), the first option the default: Teams shows
   * a choice set beside the button, Slack one button per option.
   */
  choice?: ButtonChoice;
  /**
   * A step before the click is sent: `confirm` shows `confirm` first on every platform (Teams: a card
   * that opens under the button with the confirming button); `reason` asks for a reason, sent with it
   * (Teams: a text input under the button; Slack takes it through the `skip` command instead).
   */
  ask?: 'confirm' | 'reason';
}

/** What a button lets the clicker choose; the core validates the value again. */
export interface ButtonChoice {
  /** The name the value travels under (a Teams input id is this plus the action id). */
  input: 'scanType';
  label: string;
  options: { value: ScanType; label: string }[];
}

/** The antivirus scans an expert may approve, Quick (the default) first. */
const SCAN_CHOICE: ButtonChoice = {
  input: 'scanType',
  label: 'Scan',
  options: [
    { value: 'Quick', label: 'Quick scan' },
    { value: 'Full', label: 'Full scan' },
  ],
};

/** One managed-response action as a person reads it: what, on which asset, and its live state. */
export interface ActionLineView {
  incidentId: string;
  actionId: string;
  type: ActionType;
  state: ActionState;
  /** "Isolate device ws-042.contoso.com". */
  text: string;
  /** The asset in words: "ws-042.contoso.com", "j.doe@contoso.com". */
  asset: string;
  /** The live state in words: "Isolated by @U0EXPERT1 at 10:42 UTC". */
  status: string;
  tone: Tone;
  /** A Unicode symbol for the state (both platforms show it as is). */
  icon: string;
  dryRun: boolean;
  destructive: boolean;
  /** Extra lines: reason, why excluded, "Cannot approve: ...", the result or the error. */
  details: string[];
  /** What to do by hand (customer guidance, expert task steps). */
  steps: string[];
  /** Where to do it by hand (expert tasks). */
  linkUrl?: string;
  linkLabel?: string;
  /** `48213:act-3` for customer tasks (the id `/mdr done` takes) and failed actions (`retry`, `handover`). */
  taskId?: string;
  buttons: ButtonView[];
}

/** The managed-response panel's groups: one per stage of the lifecycle (`LIFECYCLE` in core). */
export type ActionGroupKey = ActionStage;

/** A titled list of action lines, cut with "and N more". */
export interface ActionGroupView {
  key: ActionGroupKey;
  title: string;
  /** Every action in the group, shown or not. */
  total: number;
  items: ActionLineView[];
  /** How many were left out ("and N more"). */
  more: number;
}

/** The incident's assets of one kind, cut with "and N more". */
export interface AssetGroupView {
  key: 'devices' | 'users' | 'messages' | 'files';
  title: string;
  total: number;
  items: string[];
  more: number;
}

/** Everything a card shows about one incident; both renderers draw only from this. */
export interface IncidentCardView {
  incidentId: string;
  title: string;
  severity: { level: Severity; label: string; tone: Tone; colour: string; icon: string };
  status: { value: ManagedStatus; label: string; tone: Tone; icon: string };
  portalUrl?: string;
  /** `${apiBaseUrl}/api/incidents/{id}` when an API base URL was given. */
  apiUrl?: string;
  /** Where the full lists are: the API when known, else the portal. */
  moreUrl?: string;
  receivedAt: string;
  assets: AssetGroupView[];
  summary: { text: string; cut: boolean };
  groups: ActionGroupView[];
  /**
   * Open work only, over all actions shown or not: `open` (everything not closed, running ones
   * included), `failed` (open until retried or handed over), `needExpert` (the experts' other open work:
   * awaiting approval, starting, running or by hand), `needCustomer` (pending customer tasks; done and skipped ones are closed).
   */
  counts: { open: number; failed: number; needExpert: number; needCustomer: number };
}

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
const NAME_MAX = 100;
const DETAIL_MAX = 300;

const SEVERITY: Record<Severity, IncidentCardView['severity']> = {
  high: { level: 'high', label: 'High', tone: 'attention', colour: '#C4314B', icon: '🔴' },
  medium: { level: 'medium', label: 'Medium', tone: 'warning', colour: '#E46B0F', icon: '🟠' },
  low: { level: 'low', label: 'Low', tone: 'accent', colour: '#C19C00', icon: '🟡' },
  informational: {
    level: 'informational',
    label: 'Informational',
    tone: 'default',
    colour: '#0F6CBD',
    icon: '🔵',
  },
  unknown: { level: 'unknown', label: 'Unknown', tone: 'default', colour: '#616161', icon: '⚪' },
};

const STATUS: Record<ManagedStatus, IncidentCardView['status']> = {
  active: { value: 'active', label: 'Active', tone: 'attention', icon: '🆕' },
  inProgress: { value: 'inProgress', label: 'In progress', tone: 'accent', icon: '⏳' },
  awaitingCustomerAction: {
    value: 'awaitingCustomerAction',
    label: 'Awaiting customer action',
    tone: 'warning',
    icon: '👤',
  },
  resolved: { value: 'resolved', label: 'Resolved', tone: 'good', icon: '✅' },
};

const GROUP_TITLES: Record<ActionGroupKey, string> = {
  failed: 'Failed',
  completed: 'Completed by experts',
  awaitingExpert: 'Awaiting expert approval',
  expertTasks: 'Expert tasks',
  customerTasks: 'Pending customer actions',
  customerDone: 'Done by your team',
  rejected: 'Rejected',
};

/**
 * Display order on the card: failures first (open work nobody is doing until an expert retries or hands
 * them over), then the order of DESIGN.md: done, awaiting experts, the customer's part, closed tasks.
 */
const GROUP_ORDER: ActionGroupKey[] = [
  'failed',
  'completed',
  'awaitingExpert',
  'expertTasks',
  'customerTasks',
  'customerDone',
  'rejected',
];

/** Which groups get lines first when the card must be cut: the ones somebody has to act on. */
const GROUP_PRIORITY: ActionGroupKey[] = [
  'failed',
  'awaitingExpert',
  'expertTasks',
  'customerTasks',
  'completed',
  'customerDone',
  'rejected',
];

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
  const apiUrl = options.apiBaseUrl
    ? safeUrl(`${options.apiBaseUrl.replace(/\/+$/, '')}/api/incidents/${encodeURIComponent(incident.id)}`)
    : undefined;

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

/**
 * A smaller copy of a view, for renderers that must fit a platform limit: drops the last line of the
 * longest list (counted in "and N more") or shortens the summary. Returns null when nothing is left to cut.
 */
export function shrinkIncidentView(view: IncidentCardView): IncidentCardView | null {
  const lines = view.groups.reduce((n, g) => n + g.items.length, 0);
  const assets = view.assets.reduce((n, g) => n + g.items.length, 0);
  if (view.summary.text.length > 400 && view.summary.text.length > lines * 40) {
    return {
      ...view,
      summary: { text: cut(view.summary.text, Math.floor(view.summary.text.length * 0.7)), cut: true },
    };
  }
  if (lines > 0 && lines >= assets / 2) {
    const longest = [...view.groups].sort((a, b) => b.items.length - a.items.length)[0];
    if (longest) {
      return {
        ...view,
        groups: view.groups.map((g) =>
          g === longest ? { ...g, items: g.items.slice(0, -1), more: g.more + 1 } : g,
        ),
      };
    }
  }
  if (assets > 0) {
    const longest = [...view.assets].sort((a, b) => b.items.length - a.items.length)[0];
    if (longest) {
      return {
        ...view,
        assets: view.assets.map((g) =>
          g === longest ? { ...g, items: g.items.slice(0, -1), more: g.more + 1 } : g,
        ),
      };
    }
  }
  if (view.summary.text.length > 100) {
    return { ...view, summary: { text: cut(view.summary.text, 100), cut: true } };
  }
  return null;
}

/** "Isolate device ws-042.contoso.com": what an action does and to which asset, in words. */
export function describeAction(
  type: ActionType,
  target: ActionTarget,
  incident?: Pick<IncidentRecord, 'devices' | 'users' | 'files' | 'messages'>,
): { text: string; asset: string } {
  const spec = ACTION_CATALOGUE[type];
  const asset = name(assetName(spec.kind, target, incident));
  if (type === 'stopAndQuarantineFile') {
    return { text: `Stop and quarantine ${fileName(target, incident)} on ${asset}`, asset };
  }
  if (type === 'releaseFileFromQuarantine') {
    return { text: `Release ${fileName(target, incident)} from quarantine on ${asset}`, asset };
  }
  return { text: `${spec.label} ${asset}`, asset };
}

/**
 * How a person is shown: by the name their platform gave (Teams `from.name`) when the record has one,
 * otherwise by identity (`slack:U0EXPERT1` -> "@U0EXPERT1").
 */
export function displayPerson(identity: string, personName: string | undefined): string {
  const shown = personName ? name(personName) : '';
  return shown || displayIdentity(identity);
}

/** How a decider is shown: `slack:U0EXPERT1` -> "@U0EXPERT1", `api:ticket-bot` -> "ticket-bot". */
export function displayIdentity(identity: string): string {
  const at = identity.indexOf(':');
  if (at < 0) return cut(cleanText(identity), 64);
  const platform = identity.slice(0, at);
  const id = cut(cleanText(identity.slice(at + 1)), 64);
  return platform === 'slack' || platform === 'teams' || platform === 'preview' ? `@${id}` : id;
}

/** "10:42 UTC" today, "14 Mar 10:42 UTC" this year, "14 Mar 2025 10:42 UTC" otherwise. */
export function formatWhen(iso: string | undefined, now: Date): string {
  if (!iso) return '';
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return cut(cleanText(iso), 40);
  const hm = `${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())} UTC`;
  if (at.toISOString().slice(0, 10) === now.toISOString().slice(0, 10)) return hm;
  const month = MONTHS[at.getUTCMonth()];
  const year = at.getUTCFullYear() === now.getUTCFullYear() ? '' : ` ${at.getUTCFullYear()}`;
  return `${at.getUTCDate()} ${month}${year} ${hm}`;
}

/** Cut text to `max` characters with "…", never splitting a surrogate pair. */
export function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = Math.max(0, max - 1);
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…`;
}

/**
 * Text from an incident made safe to show: control characters and bidi overrides (which could reorder
 * the card's own words around them) become spaces or go; runs of blank lines are collapsed and words
 * over 200 characters are cut.
 */
export function cleanText(text: string | undefined, keepNewlines = false): string {
  if (!text) return '';
  let out = text.replace(/[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C]/g, '');
  const controls = keepNewlines ? CONTROLS_BUT_NEWLINE : CONTROLS;
  out = keepNewlines
    ? out
        .replace(/\r\n?/g, '\n')
        .replace(controls, ' ')
        .replace(/\n{3,}/g, '\n\n')
    : out.replace(controls, ' ');
  // A word longer than any line (a 10,000-character "word") only pushes the card apart: shorten it.
  // Matched only from the start of a word: tried at every position, the scan is quadratic in word length.
  out = out.replace(LONG_WORD, (word) => cut(word, 200));
  return out.trim();
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point.
const CONTROLS_BUT_NEWLINE = /[\u0000-\u0009\u000B-\u001F\u007F]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point.
const CONTROLS = /[\u0000-\u001F\u007F\u2028\u2029]+/g;

const LONG_WORD = /(?<!\S)\S{201,}/g;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** Only http(s) URLs are linked; anything else is dropped. */
function hostsOf(url: string | undefined): string[] {
  if (!url) return [];
  try {
    return [new URL(url).hostname];
  } catch {
    return [];
  }
}

function safeUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return undefined;
    const href = parsed.href.replace(/\|/g, '%7C');
    return href.length <= 2_000 ? href : undefined;
  } catch {
    return undefined;
  }
}

function name(text: string | undefined): string {
  return cut(cleanText(text), NAME_MAX);
}

function shortHash(sha: string): string {
  return sha.length > 12 ? `${sha.slice(0, 12)}…` : sha;
}

function fileName(
  t: ActionTarget,
  incident?: Pick<IncidentRecord, 'devices' | 'users' | 'files' | 'messages'>,
): string {
  const known = incident?.files.find((f) => t.sha1 && f.sha1?.toLowerCase() === t.sha1.toLowerCase());
  const fileLabel = t.fileName ?? known?.name;
  if (fileLabel) return name(fileLabel);
  return t.sha1 ? `the file with SHA-1 ${shortHash(name(t.sha1))}` : 'an unknown file';
}

function detail(text: string | undefined): string {
  return cut(cleanText(text), DETAIL_MAX);
}

function actionLine(
  a: ActionRecord,
  incident: IncidentRecord,
  now: Date,
  portalUrl: string | undefined,
): ActionLineView {
  const spec = ACTION_CATALOGUE[a.type];
  const described = describeAction(a.type, a.target, incident);
  const { asset } = described;
  // Once an expert chose the scan, the line says which one runs (or ran).
  const text =
    a.type === 'runAntivirusScan' && a.scanType ? `${a.scanType} antivirus scan on ${asset}` : described.text;
  const by = a.decidedBy ? ` by ${displayPerson(a.decidedBy, a.decidedByName)}` : '';
  const at = a.decidedAt ?? a.updatedAt;
  const when = at ? ` at ${formatWhen(at, now)}` : '';
  const dry = a.dryRun ? ' (dry run)' : '';
  const details: string[] = [];
  const steps: string[] = [];
  const buttons: ButtonView[] = [];
  const line = (status: string, tone: Tone, icon: string) => ({ status, tone, icon });
  let shown: { status: string; tone: Tone; icon: string };
  let taskId: string | undefined;
  let link: { linkUrl: string; linkLabel: string } | undefined;

  if (a.type === 'softDeleteEmails') {
    const msg = incident.messages.find((m) => m.networkMessageId === a.target.networkMessageId);
    if (msg?.subject)
      details.push(`Email: “${name(msg.subject)}”${msg.sender ? ` from ${name(msg.sender)}` : ''}`);
  }
  if (spec.kind === 'deviceFile' && a.target.sha1) details.push(`SHA-1 ${name(a.target.sha1)}`);
  if (a.reason && ['proposed', 'approved', 'customerPending', 'expertTask'].includes(a.state)) {
    details.push(`Why: ${detail(a.reason)}`);
  }

  switch (a.state) {
    case 'proposed':
      shown = line(a.blockedReason ? 'Awaiting approval (blocked)' : 'Awaiting approval', 'warning', '⏸️');
      if (a.blockedReason) details.push(`Cannot approve: ${detail(a.blockedReason)}`);
      buttons.push({
        verb: 'approve',
        label: 'Approve',
        audience: 'expert',
        style: 'primary',
        ...(spec.destructive
          ? {
              confirm: {
                title: cut(`${spec.label}?`, 100),
                text: cut(`${text}. The experts will carry this out on the customer's behalf at once.`, 300),
                confirm: 'Approve',
                deny: 'Cancel',
              },
            }
          : {}),
        ...(a.type === 'runAntivirusScan' ? { choice: SCAN_CHOICE } : {}),
      });
      buttons.push({ verb: 'reject', label: 'Reject', audience: 'expert', style: 'default' });
      break;
    case 'approved':
      shown = line(`Approved${by}${when}, starting${dry}`, 'accent', '▶️');
      break;
    case 'executing':
      shown = line(`In progress${a.progress ? `: ${detail(a.progress)}` : ''}${dry}`, 'accent', '🔄');
      break;
    case 'succeeded':
      shown = line(`${spec.done}${by}${when}${dry}`, 'good', '✅');
      if (a.result) details.push(detail(a.result));
      break;
    case 'failed':
      // The reason leads the details; the expert's buttons for a failure (retry, hand over) go in `buttons`.
      shown = line(
        `Failed${a.updatedAt ? ` at ${formatWhen(a.updatedAt, now)}` : ''}${dry}`,
        'attention',
        '❌',
      );
      details.unshift(`Reason: ${a.error ? detail(a.error) : 'not recorded'}`);
      // The id `retry` and `handover` take, for experts who answer in chat.
      taskId = taskIdOf(a.incidentId, a.id);
      buttons.push({
        verb: 'retry',
        label: 'Retry',
        audience: 'expert',
        style: 'primary',
        // A retry sends a new request to Microsoft: asked first (Slack's confirm dialog).
        confirm: {
          title: 'Retry the failed action?',
          text: cut(
            `${text}. The bot sends a new request at once; the failed attempt stays in the audit trail.`,
            300,
          ),
          confirm: 'Retry',
          deny: 'Cancel',
        },
      });
      buttons.push({ verb: 'handover', label: 'Hand to customer', audience: 'expert', style: 'default' });
      break;
    case 'rejected':
      shown = line(`Rejected${by}${when}`, 'default', '🚫');
      break;
    case 'customerPending':
      taskId = taskIdOf(a.incidentId, a.id);
      shown = line('Waiting for your team', 'warning', '👤');
      if (a.excludedBy) details.push(`Excluded by ${detail(a.excludedBy)}: the experts may not act on it.`);
      details.push(...identifierLines(a.type, a.target, incident, { sha1: false }));
      steps.push(`How: ${guidanceOf(a)}`);
      buttons.push({ verb: 'markDone', label: 'Mark done', audience: 'customer', style: 'primary' });
      if (a.type !== 'releaseFileFromQuarantine') {
        buttons.push({
          verb: 'runMyself',
          label: 'Run it myself',
          audience: 'admin',
          style: 'default',
          ask: 'confirm',
          confirm: {
            title: 'Run it yourself?',
            text: cut(
              `${text}. The bot carries this out at once as your team's decision, although the asset is excluded from the experts' actions.`,
              300,
            ),
            confirm: 'Run it',
            deny: 'Cancel',
          },
        });
      }
      buttons.push({ verb: 'skip', label: 'Skip', audience: 'customer', style: 'default', ask: 'reason' });
      break;
    case 'doneByCustomer':
      taskId = taskIdOf(a.incidentId, a.id);
      shown = line(
        `Done${a.doneBy ? ` by ${displayPerson(a.doneBy, a.doneByName)}` : by}${a.doneAt ? ` at ${formatWhen(a.doneAt, now)}` : when}`,
        'good',
        '☑️',
      );
      if (a.excludedBy) details.push(`Excluded by ${detail(a.excludedBy)}`);
      break;
    case 'skippedByCustomer':
      taskId = taskIdOf(a.incidentId, a.id);
      shown = line(
        `Skipped${a.skippedBy ? ` by ${displayPerson(a.skippedBy, a.skippedByName)}` : ''}${a.skippedAt ? ` at ${formatWhen(a.skippedAt, now)}` : ''}`,
        'default',
        '⏭️',
      );
      if (a.skipReason) details.push(`Reason: ${detail(a.skipReason)}`);
      if (a.excludedBy) details.push(`Excluded by ${detail(a.excludedBy)}`);
      break;
    case 'expertTask':
      shown = line('To do by hand (no Defender API)', 'warning', '🛠️');
      details.push(...identifierLines(a.type, a.target, incident, { sha1: false }));
      steps.push(...expertSteps(a, incident, asset));
      link = { linkUrl: actionCenterUrl(portalUrl, incident.tenantId), linkLabel: 'Open Action center' };
      buttons.push({ verb: 'markDone', label: 'Mark done', audience: 'expert', style: 'primary' });
      break;
  }

  return {
    incidentId: a.incidentId,
    actionId: a.id,
    type: a.type,
    state: a.state,
    text,
    asset,
    ...shown,
    dryRun: a.dryRun === true,
    destructive: spec.destructive,
    details,
    steps,
    ...(link ?? {}),
    ...(taskId ? { taskId } : {}),
    buttons,
  };
}

function actionCenterUrl(portalUrl: string | undefined, tenantId: string | undefined): string {
  let origin = 'https://security.microsoft.com';
  if (portalUrl) origin = new URL(portalUrl).origin;
  const url = new URL('/action-center/history', origin);
  if (tenantId) url.searchParams.set('tid', tenantId);
  return url.href;
}

/** The steps of the one action Defender has no API for: releasing a file from quarantine. */
function expertSteps(a: ActionRecord, incident: IncidentRecord, device: string): string[] {
  if (a.type !== 'releaseFileFromQuarantine') return [ACTION_CATALOGUE[a.type].guidance];
  const file = fileName(a.target, incident);
  const known = knownFileName(a.target, incident);
  const sha1 = a.target.sha1 ? name(a.target.sha1) : undefined;
  const identity = [known ? `File: ${known}` : undefined, sha1 ? `SHA-1 ${sha1}` : undefined].filter(Boolean);
  return [
    ...(identity.length > 0 ? [identity.join(' · ')] : []),
    ...releaseFromQuarantineSteps(file, device),
    'Then click Mark done here.',
  ];
}

/** The file's name, from the action or the incident's file evidence, when either has it. */
function knownFileName(t: ActionTarget, incident: Pick<IncidentRecord, 'files'>): string | undefined {
  const known = incident.files.find((f) => t.sha1 && f.sha1?.toLowerCase() === t.sha1.toLowerCase());
  const label = t.fileName ?? known?.name;
  return label ? name(label) : undefined;
}

/**
 * The identifiers a person needs to find the asset in the portal or on the device: the device's name and
 * id, the user's sign-in name and object id, the email's network message id, the file's SHA-1 (left out
 * where the line already shows it).
 */
function identifierLines(
  type: ActionType,
  t: ActionTarget,
  incident: Pick<IncidentRecord, 'devices'> | undefined,
  options: { sha1: boolean },
): string[] {
  const lines: string[] = [];
  const joined = (parts: (string | undefined)[]) => parts.filter(Boolean).join(' · ');
  switch (ACTION_CATALOGUE[type].kind) {
    case 'device':
    case 'deviceFile': {
      const dns = deviceNameOf(t, incident);
      const device = joined([
        dns ? `Device ${name(dns)}` : undefined,
        t.deviceId ? `device id ${name(t.deviceId)}` : undefined,
      ]);
      if (device) lines.push(device);
      if (options.sha1 && t.sha1)
        lines.push(joined([t.fileName ? `File ${name(t.fileName)}` : undefined, `SHA-1 ${name(t.sha1)}`]));
      break;
    }
    case 'user': {
      const user = joined([
        t.upn ? `User ${name(t.upn)}` : undefined,
        t.userId ? `object id ${name(t.userId)}` : undefined,
      ]);
      if (user) lines.push(user);
      break;
    }
    case 'message':
      if (t.networkMessageId) lines.push(`Network message id ${name(t.networkMessageId)}`);
      if (t.recipient) lines.push(`Recipient ${name(t.recipient)}`);
      break;
  }
  return lines;
}

/** The identifiers of a task's asset (device name and id, user, network message id, SHA-1), as text lines. */
export function taskIdentifiers(t: Pick<Task, 'type' | 'target'>): string[] {
  return identifierLines(t.type, t.target, undefined, { sha1: true });
}

function assetGroups(incident: IncidentRecord, max: number): AssetGroupView[] {
  const group = <T>(key: AssetGroupView['key'], title: string, all: T[], show: (x: T) => string) => ({
    key,
    title,
    total: all.length,
    items: all.slice(0, max).map(show),
    more: Math.max(0, all.length - max),
  });
  return [
    group('devices', 'Devices', incident.devices, (d) => {
      const label = name(d.dnsName ?? d.id);
      return d.group ? `${label} (${name(d.group)})` : label;
    }),
    group('users', 'Users and mailboxes', incident.users, (u) => {
      const upn = name(u.upn ?? u.id ?? 'unknown user');
      return u.displayName ? `${name(u.displayName)} (${upn})` : upn;
    }),
    group('messages', 'Emails', incident.messages, (m) => {
      const subject = m.subject ? `“${name(m.subject)}”` : `message ${name(m.networkMessageId)}`;
      return `${subject}${m.recipient ? ` to ${name(m.recipient)}` : ''}${m.sender ? ` from ${name(m.sender)}` : ''}`;
    }),
    group('files', 'Files', incident.files, (f) => {
      const label = name(f.name ?? f.path ?? 'unnamed file');
      if (f.sha1) return `${label} (SHA-1 ${shortHash(name(f.sha1))})`;
      return f.sha256 ? `${label} (SHA-256 ${shortHash(name(f.sha256))})` : label;
    }),
  ].filter((g) => g.total > 0);
}

/** One customer task as the `pending` answer shows it. */
export interface TaskLineView {
  taskId: string;
  incidentId: string;
  actionId: string;
  text: string;
  done: boolean;
  status: string;
  tone: Tone;
  details: string[];
}

/** The `pending` answer: customer tasks, cut with "and N more". */
export interface TaskListView {
  total: number;
  items: TaskLineView[];
  more: number;
  /** `${apiBaseUrl}/api/tasks?status=pending` when an API base URL was given. */
  moreUrl?: string;
}

/** Build the view of a task list (`/mdr pending`) from core tasks. */
export function buildTaskListView(
  tasks: readonly Task[],
  options: { apiBaseUrl?: string; now?: Date; maxShown?: number } = {},
): TaskListView {
  const now = options.now ?? new Date();
  const max = options.maxShown ?? 20;
  const moreUrl = options.apiBaseUrl
    ? safeUrl(`${options.apiBaseUrl.replace(/\/+$/, '')}/api/tasks?status=pending`)
    : undefined;
  return {
    total: tasks.length,
    more: Math.max(0, tasks.length - max),
    ...(moreUrl ? { moreUrl } : {}),
    items: tasks.slice(0, max).map((t) => {
      const done = t.state === 'done';
      return {
        taskId: t.id,
        incidentId: t.incidentId,
        actionId: t.actionId,
        text: describeAction(t.type, t.target).text,
        done,
        status: done
          ? `Done${t.doneBy ? ` by ${displayPerson(t.doneBy, t.doneByName)}` : ''}${t.doneAt ? ` at ${formatWhen(t.doneAt, now)}` : ''}`
          : `Pending since ${formatWhen(t.createdAt, now)}`,
        tone: done ? 'good' : 'warning',
        details: [
          `Incident ${t.incidentId} · task ${t.id}`,
          ...taskIdentifiers(t),
          ...(t.excludedBy ? [`Excluded by ${detail(t.excludedBy)}`] : []),
          ...(done ? [] : [`How: ${detail(t.guidance)}`]),
        ],
      };
    }),
  };
}
