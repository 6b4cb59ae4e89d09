/** Longest asset or person name a card shows. */
const NAME_MAX = 100;
/** Longest reason, result or error a card shows. */
const DETAIL_MAX = 300;

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

/** A name from an incident (asset, person, subject), cleaned and cut to one line's worth. */
export function name(text: string | undefined): string {
  return cut(cleanText(text), NAME_MAX);
}

/** A reason, result or error, cleaned and cut. */
export function detail(text: string | undefined): string {
  return cut(cleanText(text), DETAIL_MAX);
}

/** A hash short enough to read: its first 12 characters and "…". */
export function shortHash(sha: string): string {
  return sha.length > 12 ? `${sha.slice(0, 12)}…` : sha;
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

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** Only http(s) URLs are linked; anything else is dropped. */
export function safeUrl(url: string | undefined): string | undefined {
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

/** A link into this bot's REST API (`path` starts with `/api/`), when its base URL was given. */
export function apiLink(apiBaseUrl: string | undefined, path: string): string | undefined {
  return apiBaseUrl ? safeUrl(`${apiBaseUrl.replace(/\/+$/, '')}${path}`) : undefined;
}

/** The host of a URL, as a list (empty when there is no URL or it does not parse). */
export function hostsOf(url: string | undefined): string[] {
  if (!url) return [];
  try {
    return [new URL(url).hostname];
  } catch {
    return [];
  }
}
