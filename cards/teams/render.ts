import type { Task } from '../../core/model.js';
import { renderIncidentToFit } from '../fit.js';
import { buildTaskListView } from '../task-list-view.js';
import { cleanText, cut } from '../text.js';
import type { ActionGroupKey, ButtonView, IncidentCardView, Tone } from '../view-types.js';
import { compileTemplate } from './template.js';
import incidentTemplate from './templates/incident.json' with { type: 'json' };
import taskListTemplate from './templates/task-list.json' with { type: 'json' };

/** The templates, compiled once when the module loads (a render only fills them in). */
const expandIncidentTemplate = compileTemplate(incidentTemplate);
const expandTaskListTemplate = compileTemplate(taskListTemplate);

/** An Adaptive Card as JSON (what Teams is sent). */
export type AdaptiveCardJson = Record<string, unknown>;

/** Who the card is drawn for: `shared` is the channel copy everybody sees before their own refresh. */
export type TeamsViewer = 'expert' | 'customer' | 'admin' | 'other' | 'shared';

/** The card a person sees, from their roles (an expert's, an admin's or a customer's buttons). */
export function viewerOf(roles: { expert: boolean; admin: boolean }): TeamsViewer {
  return roles.expert ? 'expert' : roles.admin ? 'admin' : 'customer';
}

/** Options of renderTeamsCard. */
export interface TeamsCardOptions {
  viewer: TeamsViewer;
  /** A refusal or confirmation shown at the top of the clicker's card. */
  notice?: string;
  /** Users whose card refreshes by itself (Teams takes at most 60); only used on cards with refresh. */
  userIds?: string[];
  /** Add the `refresh` section (default: on the shared card only). */
  refresh?: boolean;
  /** Card JSON size limit in bytes (default 28,000). */
  maxBytes?: number;
}

/** Teams refuses cards far above this; 28 KB keeps room for the activity around the card. */
export const TEAMS_CARD_MAX_BYTES = 28_000;
const MAX_REFRESH_USERS = 60;

const COLOR: Record<Tone, string> = {
  default: 'Default',
  good: 'Good',
  warning: 'Warning',
  attention: 'Attention',
  accent: 'Accent',
};

/**
 * Escape text for an Adaptive Card TextBlock (a markdown subset) so it shows literally: backslash before
 * markdown punctuation, and before list or heading markers at the start of a line.
 */
export function escapeTeamsMarkdown(text: string): string {
  return text
    .replace(/[\\`*_~[\]<]/g, '\\$&')
    .replace(/^(\s*)([-+#>=])/gm, '$1\\$2')
    .replace(/^(\s*\d+)([.)])/gm, '$1\\$2');
}

/** The Adaptive Card 1.5 of an incident, drawn for one viewer; always inside TEAMS_CARD_MAX_BYTES. */
export function renderTeamsCard(view: IncidentCardView, options: TeamsCardOptions): AdaptiveCardJson {
  const maxBytes = options.maxBytes ?? TEAMS_CARD_MAX_BYTES;
  return renderIncidentToFit(
    view,
    (v) => expandIncident(v, options),
    (card) => byteLength(card) <= maxBytes,
  );
}

/** The Adaptive Card answering the `pending` command in Teams: each pending task with a Mark done button. */
export function renderTeamsTaskList(
  tasks: readonly Task[],
  options: { apiBaseUrl?: string; now?: Date; maxShown?: number } = {},
): AdaptiveCardJson {
  const md = escapeTeamsMarkdown;
  const view = buildTaskListView(tasks, options);
  const data = {
    heading: view.total === 0 ? 'No pending customer tasks.' : `Customer tasks (${view.total})`,
    tasks: view.items.map((t) => ({
      text: md(t.text),
      status: md(t.status),
      color: COLOR[t.tone],
      done: t.done,
      details: t.details.map((d) => ({ text: md(d) })),
      incidentId: t.incidentId,
      actionId: t.actionId,
    })),
    more: view.more > 0 ? md(`…and ${view.more} more: see the full list (link below).`) : '',
    links: view.moreUrl ? [{ title: 'All pending tasks (API)', url: view.moreUrl }] : [],
  };
  return expand(expandTaskListTemplate, data);
}

/**
 * The id of a choice's input on a card: one per action, since Teams sends every input of the card with
 * a click and a card may carry several choices of the same kind.
 */
export function teamsInputId(input: string, actionId: string): string {
  return `${input}:${actionId}`;
}

function byteLength(card: AdaptiveCardJson): number {
  return Buffer.byteLength(JSON.stringify(card), 'utf8');
}

/**
 * The buttons one viewer sees. The shared copy (everybody's until their own refresh) leaves out the
 * admins' own buttons, so an expert never sees them; admins see them on their refreshed card, with the
 * customer's buttons.
 */
function buttonsFor(viewer: TeamsViewer, buttons: ButtonView[]): ButtonView[] {
  switch (viewer) {
    case 'shared':
      return buttons.filter((b) => b.audience !== 'admin');
    case 'other':
      return [];
    case 'admin':
      return buttons.filter((b) => b.audience === 'admin' || b.audience === 'customer');
    default:
      return buttons.filter((b) => b.audience === viewer);
  }
}

/**
 * The id of the reason input under an action's Skip button (input ids are unique within a card): its
 * value arrives in the click's data under this name.
 */
export function reasonInputId(actionId: string): string {
  return `reason-${actionId}`;
}

/** A button as the template draws it: a plain `Action.Execute`, or a card with a step before it. */
function teamsButton(b: ButtonView, ids: { incidentId: string; actionId: string }) {
  const base = { title: b.label, verb: b.verb, style: BUTTON_STYLE[b.style], ...ids, url: '' };
  if (b.ask === 'confirm') {
    return {
      ...base,
      kind: 'confirm',
      prompt: escapeTeamsMarkdown(b.confirm?.text ?? `${b.label}?`),
      confirmTitle: b.confirm?.confirm ?? b.label,
    };
  }
  if (b.ask === 'reason') {
    return { ...base, kind: 'reason', inputId: reasonInputId(ids.actionId), confirmTitle: b.label };
  }
  return { ...base, kind: 'execute' };
}

/** The colour of a group's title: failures stand out, closed work is quiet, open work is a warning. */
const GROUP_TONE: Record<ActionGroupKey, Tone> = {
  failed: 'attention',
  completed: 'good',
  awaitingExpert: 'warning',
  expertTasks: 'warning',
  customerTasks: 'warning',
  customerDone: 'good',
  rejected: 'default',
};

const BUTTON_STYLE: Record<ButtonView['style'], string> = {
  primary: 'positive',
  danger: 'destructive',
  default: 'default',
};

function expandIncident(view: IncidentCardView, options: TeamsCardOptions): AdaptiveCardJson {
  const md = escapeTeamsMarkdown;
  const refresh = options.refresh ?? options.viewer === 'shared';
  const userIds = (options.userIds ?? []).slice(0, MAX_REFRESH_USERS);
  const more = (n: number) => (n > 0 ? md(`…and ${n} more: see the full list (link below).`) : '');
  const data = {
    incidentId: view.incidentId,
    incidentText: md(view.incidentId),
    refresh: { enabled: refresh, userIds },
    notice: options.notice ? md(cut(cleanText(options.notice), 1_000)) : '',
    title: md(view.title),
    severity: { icon: view.severity.icon, label: view.severity.label, color: COLOR[view.severity.tone] },
    facts: [
      { title: 'Status', value: md(`${view.status.icon} ${view.status.label}`) },
      { title: 'Received', value: md(view.receivedAt) },
      ...(view.counts.failed > 0
        ? [{ title: 'Failed', value: md(`${view.counts.failed} to retry or hand over`) }]
        : []),
      ...(view.counts.needExpert > 0
        ? [{ title: 'Experts', value: md(`${view.counts.needExpert} awaiting approval, running or by hand`) }]
        : []),
      ...(view.counts.needCustomer > 0
        ? [{ title: 'Your team', value: md(`${view.counts.needCustomer} to do`) }]
        : []),
    ],
    assets: view.assets.map((g) => ({
      title: md(`${g.title} (${g.total})`),
      lines: [
        ...g.items.map((item) => ({ text: md(`• ${item}`) })),
        ...(g.more > 0 ? [{ text: md(`…and ${g.more} more`) }] : []),
      ],
    })),
    summary: md(
      view.summary.cut ? `${view.summary.text} (cut: the full text is in the portal)` : view.summary.text,
    ),
    groups: view.groups.map((g) => ({
      title: md(`${g.title} (${g.total})`),
      color: COLOR[GROUP_TONE[g.key]],
      more: more(g.more),
      items: g.items.map((a) => {
        const buttons = buttonsFor(options.viewer, a.buttons);
        const actions = [
          ...buttons.map((b) => teamsButton(b, { incidentId: a.incidentId, actionId: a.actionId })),
          ...(a.linkUrl ? [{ kind: 'link', title: a.linkLabel ?? 'Open', url: a.linkUrl }] : []),
        ];
        return {
          icon: a.icon,
          text: md(a.text),
          status: md(a.status),
          color: COLOR[a.tone],
          details: [...a.details, ...(a.taskId ? [`Task ${a.taskId}`] : [])].map((d) => ({ text: md(d) })),
          steps: a.steps.map((s, i) => ({ text: md(a.steps.length > 1 ? `${i + 1}. ${s}` : s) })),
          // A choice (the antivirus scan) sits beside the button it goes with; Teams sends its value
          // with that button's data under the input's id.
          choices: buttons.flatMap((b) =>
            b.choice
              ? [
                  {
                    id: teamsInputId(b.choice.input, a.actionId),
                    label: b.choice.label,
                    value: b.choice.options[0]?.value ?? '',
                    options: b.choice.options.map((o) => ({ title: o.label, value: o.value })),
                  },
                ]
              : [],
          ),
          actions,
        };
      }),
    })),
    links: [
      ...(view.portalUrl ? [{ title: 'Open in Microsoft Defender', url: view.portalUrl }] : []),
      ...(view.apiUrl ? [{ title: 'Full state (API)', url: view.apiUrl }] : []),
    ],
  };
  return expand(expandIncidentTemplate, data);
}

/** Expand a template once with the data as `$root`; data values are never evaluated as expressions. */
function expand(template: (data: unknown) => unknown, data: Record<string, unknown>): AdaptiveCardJson {
  const card = template(data) as AdaptiveCardJson;
  // `$when: false` on the card's own refresh leaves `refresh: null`, which Teams would reject.
  if (card.refresh === null || card.refresh === undefined) delete card.refresh;
  return card;
}
