import { escapeHtml } from './slack-html.js';

/** Teams' light-theme text colours, the same on plain and emphasis containers. */
const TEAMS_FOREGROUND = {
  default: { default: '#242424', subtle: '#616161' },
  accent: { default: '#5B5FC7', subtle: '#7579EB' },
  good: { default: '#0E700E', subtle: '#13A10E' },
  warning: { default: '#BC4B09', subtle: '#DA7B26' },
  attention: { default: '#C4314B', subtle: '#D13438' },
  dark: { default: '#242424', subtle: '#424242' },
  light: { default: '#FFFFFF', subtle: '#F5F5F5' },
};

/** A Teams-like host config for the official adaptivecards renderer (light theme, Segoe UI). */
export const TEAMS_HOST_CONFIG = {
  supportsInteractivity: true,
  fontFamily:
    '"Segoe UI", "Segoe UI Web (West European)", -apple-system, BlinkMacSystemFont, Roboto, "Helvetica Neue", sans-serif',
  spacing: { small: 4, default: 8, medium: 16, large: 20, extraLarge: 24, padding: 16 },
  separator: { lineThickness: 1, lineColor: '#E0E0E0' },
  fontSizes: { small: 12, default: 14, medium: 16, large: 18, extraLarge: 24 },
  fontWeights: { lighter: 300, default: 400, bolder: 600 },
  imageSizes: { small: 32, medium: 52, large: 100 },
  containerStyles: {
    default: {
      backgroundColor: '#FFFFFF',
      foregroundColors: TEAMS_FOREGROUND,
    },
    emphasis: {
      backgroundColor: '#F5F5F5',
      foregroundColors: TEAMS_FOREGROUND,
    },
    warning: {
      backgroundColor: '#FFF4CE',
      foregroundColors: {
        default: { default: '#242424', subtle: '#616161' },
        warning: { default: '#835C00', subtle: '#8A6D00' },
        attention: { default: '#C4314B', subtle: '#D13438' },
      },
    },
  },
  actions: {
    maxActions: 6,
    spacing: 'default',
    buttonSpacing: 8,
    showCard: { actionMode: 'inline', inlineTopMargin: 8 },
    actionsOrientation: 'horizontal',
    actionAlignment: 'left',
  },
  adaptiveCard: { allowCustomStyle: true },
  factSet: {
    title: {
      color: 'default',
      size: 'default',
      isSubtle: true,
      weight: 'default',
      wrap: true,
      maxWidth: 150,
    },
    value: { color: 'default', size: 'default', isSubtle: false, weight: 'default', wrap: true },
    spacing: 12,
  },
  textBlock: { headingLevel: 2 },
} as const;

/** Styles that make the renderer's output look like a Teams card. */
export const TEAMS_HTML_CSS = `
.teams-card{width:100%;max-width:760px;border:1px solid #E0E0E0;border-radius:8px;overflow:hidden;box-shadow:0 1px 2px rgba(0,0,0,.14),0 0 2px rgba(0,0,0,.12);background:#fff}
.teams-card .ac-pushButton{font-family:inherit;font-size:14px;font-weight:600;min-height:32px;padding:0 12px;border-radius:4px;border:1px solid #D1D1D1;background:#fff;color:#242424;cursor:pointer;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;flex:0 1 auto!important}
.teams-card .ac-pushButton:hover{background:#F5F5F5}
.teams-card .ac-pushButton.style-positive{background:#5B5FC7;border-color:#5B5FC7;color:#fff}
.teams-card .ac-pushButton.style-destructive{background:#fff;border-color:#C4314B;color:#C4314B}
.teams-card .ac-actionSet{justify-content:flex-start!important}
.teams-card .ac-textBlock p{margin:0}
`;

/**
 * Show an escaped TextBlock the way Teams does: our cards never use markdown for formatting, so the only
 * markdown left is backslash escapes; undo them and escape the text for HTML.
 */
export const TEAMS_MARKDOWN_SHIM = `function(text, result){
  var plain = String(text).replace(/\\\\([\\\\\`*_~[\\]<>{}()#+\\-.!|=])/g, '$1');
  result.outputHtml = plain.replace(/&/g,'&amp;').replace(/</g,'&lt;').replace(/>/g,'&gt;').replace(/"/g,'&quot;').replace(/\\n/g,'<br>');
  result.didProcess = true;
}`;

/** JSON safe to put inside a <script> element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/**
 * The Teams renderer of both pages that draw Adaptive Cards (the preview page and the one the README
 * pictures are taken of): browser script, run after the official adaptivecards renderer has loaded,
 * that defines `window.renderTeamsCard(cardJson, onAction)`. It returns the card drawn in a
 * `.teams-card` element with Teams' host config; a click on an Open URL opens it, any other button calls
 * `onAction(verb, data)`.
 */
export function teamsRendererScript(hostConfig: unknown = TEAMS_HOST_CONFIG): string {
  return `(function(){
  var AC = window.AdaptiveCards;
  AC.AdaptiveCard.onProcessMarkdown = ${TEAMS_MARKDOWN_SHIM};
  var hostConfig = new AC.HostConfig(${scriptJson(hostConfig)});
  window.renderTeamsCard = function(cardJson, onAction){
    var card = new AC.AdaptiveCard();
    card.hostConfig = hostConfig;
    card.onExecuteAction = function(action){
      if (action instanceof AC.OpenUrlAction) { window.open(action.url, '_blank', 'noopener'); return; }
      onAction(action.verb, action.data);
    };
    card.parse(cardJson);
    var wrap = document.createElement('div');
    wrap.className = 'teams-card';
    wrap.appendChild(card.render());
    return wrap;
  };
})();`;
}

/**
 * A whole HTML page that draws one Adaptive Card with `teamsRendererScript`. Give the official renderer
 * either as a URL (`scriptSrc`, e.g. a route serving adaptivecards/dist/adaptivecards.min.js) or inline
 * (`scriptText`). Clicking a button calls `window.onCardAction(verb, data)` when the page defines it.
 */
export function teamsCardPage(
  card: unknown,
  options: { scriptSrc?: string; scriptText?: string; title?: string; hostConfig?: unknown } = {},
): string {
  const script = options.scriptText
    ? `<script>${options.scriptText.replace(/<\/script/gi, '<\\/script')}</script>`
    : `<script src="${escapeHtml(options.scriptSrc ?? '/vendor/adaptivecards.min.js')}"></script>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(options.title ?? 'Teams card')}</title>
<style>body{margin:0;padding:16px;background:#F5F5F5;font-family:"Segoe UI",-apple-system,Roboto,sans-serif}${TEAMS_HTML_CSS}</style>
${script}</head>
<body><div id="card"></div>
<script>
${teamsRendererScript(options.hostConfig)}
document.getElementById('card').appendChild(window.renderTeamsCard(${scriptJson(card)}, function(verb, data){
  if (typeof window.onCardAction === 'function') window.onCardAction(verb, data);
}));
</script></body></html>
`;
}
