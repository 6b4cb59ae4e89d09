import type { Button, ContextBlock, KnownBlock, SectionBlock } from '@slack/types';
import type { ScanType } from '../../core/actions.js';
import type { Task } from '../../core/model.js';
import { renderIncidentToFit, renderToFit } from '../fit.js';
import { buildTaskListView, type TaskListView } from '../task-list-view.js';
import { cleanText, cut } from '../text.js';
import { checkSlackLimits } from '../validate.js';
import type { ActionLineView, ButtonView, IncidentCardView } from '../view-types.js';

/** A Slack message: notification text plus Block Kit blocks. */
export interface SlackMessage {
  text: string;
  blocks: KnownBlock[];
}

/**
 * What every Slack button carries: only the ids, everything else is looked up at click time; an approval
 * with a choice (the antivirus scan) carries the chosen value too.
 */
export interface SlackButtonValue {
  incidentId: string;
  actionId: string;
  scanType?: ScanType;
}

/** Total block text the renderers aim for (Slack starts refusing around 13.2k). */
export const SLACK_TEXT_BUDGET = 10_000;

const ZWSP = '\u200B';

/**
 * Escape text for Slack: `&`, `<` and `>` become entities, so `<!channel>` and `<http://x|y>` stay text.
 * Slack decodes these three in every text object, plain_text included, so both kinds get it.
 */
export function escapeSlack(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Escape text for a mrkdwn object: entities as escapeSlack, and a zero-width space on both sides of
 * `*`, `_`, `~` and backticks (and before a leading quote marker) so they never start formatting.
 */
export function escapeMrkdwn(text: string): string {
  return escapeSlack(text)
    .replace(/[*_~`]/g, `${ZWSP}$&${ZWSP}`)
    .replace(/^&gt;/gm, `${ZWSP}&gt;`);
}

/** A reply of plain text (refusals, confirmations, command answers), escaped for Slack. */
export function renderSlackText(text: string): SlackMessage {
  const shown = fitEscaped(text, 2_900, escapeMrkdwn);
  return { text: fitEscaped(text, 2_900, escapeSlack), blocks: [mrkdwnSection(shown)] };
}

/** The Block Kit message of an incident; always inside Slack's limits (cut with "and N more"). */
export function renderSlackMessage(view: IncidentCardView, options: { notice?: string } = {}): SlackMessage {
  return renderIncidentToFit(view, (v) => incidentMessage(v, options.notice), withinSlackLimits);
}

/** The `/mdr pending` answer: each pending customer task with a Mark done button. */
export function renderSlackTaskList(
  tasks: readonly Task[],
  options: { apiBaseUrl?: string; now?: Date; maxShown?: number } = {},
): SlackMessage {
  return renderToFit(
    options.maxShown ?? 20,
    (maxShown) => taskListMessage(buildTaskListView(tasks, { ...options, maxShown })),
    withinSlackLimits,
    (maxShown) => (maxShown > 0 ? maxShown - 1 : null),
  );
}

function withinSlackLimits(message: SlackMessage): boolean {
  return checkSlackLimits(message, { totalBlockText: SLACK_TEXT_BUDGET }).length === 0;
}

/** The JSON a button's `value` holds. */
export function buttonValue(incidentId: string, actionId: string, scanType?: ScanType): string {
  const value: SlackButtonValue = { incidentId, actionId, ...(scanType ? { scanType } : {}) };
  return JSON.stringify(value);
}

/**
 * A card button as Slack buttons: one, or one per option of its choice ("Approve quick scan",
 * "Approve full scan"), each carrying its option in the value and its own action id.
 */
function actionButtons(b: ButtonView, ids: { incidentId: string; actionId: string }): Button[] {
  if (!b.choice) return [actionButton(b, ids)];
  return b.choice.options.map((o, i) => {
    const button = actionButton(
      { ...b, label: `${b.label} ${o.label.toLowerCase()}`, style: i === 0 ? b.style : 'default' },
      ids,
    );
    return {
      ...button,
      action_id: `${b.verb}:${ids.actionId}:${o.value}`.slice(0, 255),
      value: buttonValue(ids.incidentId, ids.actionId, o.value),
    };
  });
}

function taskListMessage(view: TaskListView): SlackMessage {
  const heading = view.total === 0 ? 'No pending customer tasks.' : `Customer tasks (${view.total})`;
  const blocks: KnownBlock[] = [{ type: 'header', text: { type: 'plain_text', text: escapeSlack(heading) } }];
  for (const t of view.items) {
    const lines = [
      `${t.done ? '☑️' : '👤'} *${escapeMrkdwn(t.text)}*`,
      escapeMrkdwn(t.status),
      ...t.details.map((d) => `• ${escapeMrkdwn(d)}`),
    ];
    blocks.push(mrkdwnSection(fitLines(lines, 2_900)));
    if (!t.done) {
      blocks.push({
        type: 'actions',
        block_id: `task:${t.taskId}`.slice(0, 255),
        elements: [
          actionButton({ verb: 'markDone', label: 'Mark done', audience: 'customer', style: 'primary' }, t),
        ],
      });
    }
  }
  if (view.more > 0) blocks.push(contextText(`…and ${view.more} more: see the full list (button below).`));
  if (view.moreUrl) {
    blocks.push({
      type: 'actions',
      block_id: 'links',
      elements: [linkButton('open_tasks_api', 'All pending tasks (API)', view.moreUrl)],
    });
  }
  return { text: heading, blocks };
}

function incidentMessage(view: IncidentCardView, notice: string | undefined): SlackMessage {
  const blocks: KnownBlock[] = [];
  if (notice) blocks.push(mrkdwnSection(`⚠️ ${fitEscaped(cleanText(notice), 2_800, escapeMrkdwn)}`));
  blocks.push({
    type: 'header',
    text: {
      type: 'plain_text',
      text: fitEscaped(`${view.severity.icon} ${view.title}`, 150, escapeSlack),
      emoji: true,
    },
  });
  blocks.push({
    type: 'context',
    elements: [
      {
        type: 'mrkdwn',
        text: [
          `*${view.severity.label}* severity`,
          `${view.status.icon} *${view.status.label}*`,
          ...openWork(view.counts),
          `Incident ${escapeMrkdwn(view.incidentId)}`,
          `received ${escapeMrkdwn(view.receivedAt)}`,
        ].join('  ·  '),
        verbatim: true,
      },
    ],
  });

  if (view.assets.length > 0) {
    blocks.push({
      type: 'section',
      fields: view.assets.map((g) => ({
        type: 'mrkdwn' as const,
        verbatim: true,
        text: fitLines(
          [
            `*${g.title} (${g.total})*`,
            ...g.items.map((item) => `• ${escapeMrkdwn(item)}`),
            ...(g.more > 0 ? [`_…and ${g.more} more_`] : []),
          ],
          1_900,
        ),
      })),
    });
  }
  if (view.summary.text) {
    const tail = view.summary.cut ? '\n_(cut: the full text is in the portal)_' : '';
    blocks.push(
      mrkdwnSection(
        `*Investigation summary*\n${fitEscaped(view.summary.text, 2_800 - tail.length, escapeMrkdwn)}${tail}`,
      ),
    );
  }
  blocks.push({ type: 'divider' });

  if (view.groups.length === 0) blocks.push(contextText('No response actions yet.'));
  for (const group of view.groups) {
    blocks.push(mrkdwnSection(`*${group.title} (${group.total})*`));
    let pending: string[] = [];
    const flush = () => {
      if (pending.length > 0) blocks.push(mrkdwnSection(fitLines(pending, 2_900, '\n\n')));
      pending = [];
    };
    for (const item of group.items) {
      const text = actionText(item);
      if (item.buttons.length === 0 && !item.linkUrl) {
        if ([...pending, text].join('\n\n').length > 2_900) flush();
        pending.push(text);
        continue;
      }
      flush();
      blocks.push(mrkdwnSection(text));
      blocks.push({
        type: 'actions',
        block_id: `action:${item.actionId}`.slice(0, 255),
        elements: [
          // Skip (a reason to give) opens a modal that asks for it; the `skip` command takes one too.
          ...item.buttons.flatMap((b) => actionButtons(b, item)),
          ...(item.linkUrl
            ? [linkButton(`open:${item.actionId}`, item.linkLabel ?? 'Open', item.linkUrl)]
            : []),
        ],
      });
    }
    flush();
    if (group.more > 0) {
      blocks.push(contextText(`…and ${group.more} more: see the full list (buttons below).`));
    }
  }

  const links: Button[] = [];
  if (view.portalUrl) links.push(linkButton('open_portal', 'Open in Microsoft Defender', view.portalUrl));
  if (view.apiUrl) links.push(linkButton('open_api', 'Full state (API)', view.apiUrl));
  if (links.length > 0) blocks.push({ type: 'actions', block_id: 'links', elements: links });

  const text = fitEscaped(
    `${view.severity.label} severity incident ${view.incidentId}: ${view.title} (${view.status.label})`,
    300,
    escapeMrkdwn,
  );
  return { text, blocks };
}

/** The open work in words, as the Teams card's facts count it (closed customer tasks are not counted). */
function openWork(counts: IncidentCardView['counts']): string[] {
  return [
    ...(counts.failed > 0 ? [`${counts.failed} failed`] : []),
    ...(counts.needExpert > 0 ? [`${counts.needExpert} for the experts`] : []),
    ...(counts.needCustomer > 0 ? [`${counts.needCustomer} for your team`] : []),
  ];
}

function actionText(item: ActionLineView): string {
  const lines = [
    `${item.icon} *${escapeMrkdwn(item.text)}*`,
    escapeMrkdwn(item.status),
    ...item.details.map((d) => `• ${escapeMrkdwn(d)}`),
    ...(item.taskId ? [`• Task ${escapeMrkdwn(item.taskId)}`] : []),
    ...item.steps.map((s, i) => `${item.steps.length > 1 ? `${i + 1}.` : '→'} ${escapeMrkdwn(s)}`),
  ];
  return fitLines(lines, 2_900);
}

function actionButton(b: ButtonView, ids: { incidentId: string; actionId: string }): Button {
  return {
    type: 'button',
    action_id: `${b.verb}:${ids.actionId}`.slice(0, 255),
    text: { type: 'plain_text', text: fitEscaped(b.label, 75, escapeSlack), emoji: true },
    value: buttonValue(ids.incidentId, ids.actionId),
    ...(b.style === 'primary'
      ? { style: 'primary' as const }
      : b.style === 'danger'
        ? { style: 'danger' as const }
        : {}),
    ...(b.confirm
      ? {
          confirm: {
            title: { type: 'plain_text' as const, text: fitEscaped(b.confirm.title, 100, escapeSlack) },
            text: { type: 'plain_text' as const, text: fitEscaped(b.confirm.text, 300, escapeSlack) },
            confirm: { type: 'plain_text' as const, text: fitEscaped(b.confirm.confirm, 30, escapeSlack) },
            deny: { type: 'plain_text' as const, text: fitEscaped(b.confirm.deny, 30, escapeSlack) },
            style: 'danger' as const,
          },
        }
      : {}),
  };
}

function linkButton(actionId: string, label: string, url: string): Button {
  return {
    type: 'button',
    action_id: actionId.slice(0, 255),
    text: { type: 'plain_text', text: fitEscaped(label, 75, escapeSlack) },
    url,
  };
}

function mrkdwnSection(text: string): SectionBlock {
  return { type: 'section', text: { type: 'mrkdwn', text, verbatim: true } };
}

function contextText(text: string): ContextBlock {
  return { type: 'context', elements: [{ type: 'mrkdwn', text: escapeMrkdwn(text), verbatim: true }] };
}

/** Escape `raw` and cut it (before escaping, so no entity is split) until the result fits in `max`. */
function fitEscaped(raw: string, max: number, escapeText: (s: string) => string): string {
  const whole = escapeText(raw);
  if (whole.length <= max) return whole;
  let lo = 0;
  let hi = Math.min(raw.length, max);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (escapeText(cut(raw, mid)).length <= max) lo = mid;
    else hi = mid - 1;
  }
  return escapeText(cut(raw, lo));
}

/** Join already-escaped lines, leaving out whole lines from the end (with "…") to stay within `max`. */
function fitLines(lines: string[], max: number, separator = '\n'): string {
  const out: string[] = [];
  let length = 0;
  for (const line of lines) {
    const add = (out.length > 0 ? separator.length : 0) + line.length;
    if (length + add > max - 2) {
      out.push('…');
      break;
    }
    out.push(line);
    length += add;
  }
  return out.join(separator);
}
