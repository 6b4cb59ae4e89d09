import type { KnownBlock } from '@slack/types';

/** Escape text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

type Text = { type?: string; text?: string };
type Element = Record<string, unknown> & { type?: string; text?: Text };

/** A URL safe for an href: http(s) only, escaped; anything else gives null. */
function safeHref(url: unknown): string | null {
  if (typeof url !== 'string') return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? escapeHtml(parsed.href) : null;
  } catch {
    return null;
  }
}

function decodeSlackEntities(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/** Slack mrkdwn formatting on text that is already HTML-escaped (markers need word boundaries). */
function formatRun(escaped: string): string {
  const wrap = (marker: string, tag: string, s: string) => {
    const m = marker.replace(/[*~`]/g, '\\$&');
    const re = new RegExp(
      `(^|[\\s(>])${m}([^\\s${m}](?:[^${m}\\n]*?[^\\s${m}])?)${m}(?=$|[\\s.,!?;:)<])`,
      'g',
    );
    return s.replace(re, `$1<${tag}>$2</${tag}>`);
  };
  let out = wrap('`', 'code', escaped);
  out = wrap('*', 'b', out);
  out = wrap('_', 'i', out);
  out = wrap('~', 's', out);
  return out;
}

/** Slack mrkdwn to HTML: links and mentions from `<...>`, formatting, line breaks; all text escaped. */
export function mrkdwnToHtml(text: string): string {
  let html = '';
  const re = /<([^<>]*)>/g;
  let last = 0;
  const plain = (s: string) => formatRun(escapeHtml(decodeSlackEntities(s)));
  for (let m = re.exec(text); m; m = re.exec(text)) {
    html += plain(text.slice(last, m.index));
    last = m.index + m[0].length;
    const inner = m[1] ?? '';
    const [target = '', label] = inner.split('|', 2);
    if (target.startsWith('@') || target.startsWith('!') || target.startsWith('#')) {
      const shown = label ?? (target.startsWith('!') ? `@${target.slice(1)}` : target);
      html += `<span class="mention">${escapeHtml(decodeSlackEntities(shown))}</span>`;
    } else {
      const href = safeHref(decodeSlackEntities(target));
      const shown = escapeHtml(decodeSlackEntities(label ?? target));
      html += href ? `<a href="${href}" rel="noopener noreferrer">${shown}</a>` : shown;
    }
  }
  html += plain(text.slice(last));
  return html.replace(/\n/g, '<br>');
}

function textToHtml(t: Text | undefined): string {
  if (!t || typeof t.text !== 'string') return '';
  return t.type === 'mrkdwn'
    ? mrkdwnToHtml(t.text)
    : escapeHtml(decodeSlackEntities(t.text)).replace(/\n/g, '<br>');
}

function buttonHtml(el: Element): string {
  const style = el.style === 'primary' ? ' primary' : el.style === 'danger' ? ' danger' : '';
  const label = textToHtml(el.text);
  const href = safeHref(el.url);
  const confirm = el.confirm ? ' title="Asks for confirmation"' : '';
  if (href) return `<a class="btn${style}" href="${href}" rel="noopener noreferrer">${label} ↗</a>`;
  return `<button class="btn${style}" type="button" data-action-id="${escapeHtml(String(el.action_id ?? ''))}" data-value="${escapeHtml(String(el.value ?? ''))}"${confirm}>${label}</button>`;
}

/** Block Kit blocks as an HTML fragment that looks like Slack draws them; every text is escaped. */
export function slackBlocksToHtml(blocks: readonly KnownBlock[]): string {
  return blocks
    .map((raw) => {
      const block = raw as unknown as Record<string, unknown>;
      switch (block.type) {
        case 'header':
          return `<div class="header">${textToHtml(block.text as Text)}</div>`;
        case 'divider':
          return '<hr class="divider">';
        case 'context': {
          const elements = (block.elements as Element[]) ?? [];
          return `<div class="context">${elements.map((e) => `<span>${textToHtml(e as Text)}</span>`).join('')}</div>`;
        }
        case 'section': {
          const text = block.text ? `<div class="text">${textToHtml(block.text as Text)}</div>` : '';
          const fields = (block.fields as Text[] | undefined) ?? [];
          const grid = fields.length
            ? `<div class="fields">${fields.map((f) => `<div>${textToHtml(f)}</div>`).join('')}</div>`
            : '';
          const accessory = block.accessory ? buttonHtml(block.accessory as Element) : '';
          return `<div class="section">${text}${grid}${accessory}</div>`;
        }
        case 'actions': {
          const elements = (block.elements as Element[]) ?? [];
          return `<div class="actions">${elements.map(buttonHtml).join('')}</div>`;
        }
        default:
          return `<div class="unknown">[${escapeHtml(String(block.type))} block]</div>`;
      }
    })
    .join('\n');
}

/** Styles of slackBlocksToHtml's output (Slack's light theme). */
export const SLACK_HTML_CSS = `
.slack-msg{font-family:"Lato","Slack-Lato","Helvetica Neue",Helvetica,Arial,sans-serif;font-size:15px;line-height:1.46668;color:#1d1c1d;display:flex;gap:8px;padding:8px 20px;max-width:760px}
.slack-msg .avatar{width:36px;height:36px;border-radius:6px;background:#4a154b;color:#fff;font-weight:900;display:flex;align-items:center;justify-content:center;font-size:13px;flex:none}
.slack-msg .meta{margin-bottom:2px}.slack-msg .name{font-weight:900}.slack-msg .app{background:#e8e8e8;color:#616061;font-size:10px;font-weight:700;padding:1px 3px;border-radius:2px;margin:0 6px;vertical-align:1px}
.slack-msg .time{color:#616061;font-size:12px}.slack-msg .body{flex:1;min-width:0}
.slack-msg .header{font-size:18px;font-weight:900;line-height:1.33;margin:6px 0 4px}
.slack-msg .context{color:#616061;font-size:13px;margin:4px 0}.slack-msg .context span+span{margin-left:8px}
.slack-msg .section{margin:8px 0;overflow-wrap:anywhere}
.slack-msg .fields{display:grid;grid-template-columns:1fr 1fr;gap:8px 16px;margin-top:4px}
.slack-msg .divider{border:0;border-top:1px solid #dddddd;margin:12px 0}
.slack-msg .actions{display:flex;flex-wrap:wrap;gap:8px;margin:6px 0 12px}
.slack-msg .btn{font:inherit;font-size:13px;font-weight:700;height:28px;padding:0 12px;border-radius:4px;border:1px solid rgba(29,28,29,.3);background:#fff;color:#1d1c1d;cursor:pointer;text-decoration:none;display:inline-flex;align-items:center}
.slack-msg .btn.primary{background:#007a5a;border-color:#007a5a;color:#fff}
.slack-msg .btn.danger{background:#e01e5a;border-color:#e01e5a;color:#fff}
.slack-msg code{font-family:Monaco,Menlo,Consolas,monospace;font-size:12px;background:#f8f8f8;border:1px solid #e8e8e8;border-radius:3px;padding:0 3px;color:#e01e5a}
.slack-msg .mention{background:#e8f5fa;color:#1264a3;border-radius:3px;padding:0 2px}
.slack-msg a{color:#1264a3}
`;

/** A whole HTML page showing one Slack message the way a channel shows it. */
export function slackMessagePage(
  message: { text: string; blocks: readonly KnownBlock[] },
  options: { appName?: string; time?: string; title?: string } = {},
): string {
  const appName = escapeHtml(options.appName ?? 'MDR Response');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(options.title ?? 'Slack message')}</title>
<style>body{margin:0;background:#fff}${SLACK_HTML_CSS}</style></head>
<body><div class="slack-msg"><div class="avatar">MDR</div><div class="body">
<div class="meta"><span class="name">${appName}</span><span class="app">APP</span><span class="time">${escapeHtml(options.time ?? '')}</span></div>
${slackBlocksToHtml(message.blocks)}
</div></div></body></html>
`;
}
