/**
 * The part of OData `$filter` that Defender's `GET /api/machineactions` list takes and the bot sends:
 * clauses joined by `and`, each `field eq 'value'` or `field in ('a','b',...)`, on the documented
 * filterable fields. Anything else is refused, as Defender refuses a filter it cannot read (400).
 */

/** Fields the machine actions list may be filtered on (Defender's documentation). */
export const FILTERABLE = ['id', 'status', 'machineId', 'type', 'requestor', 'creationDateTimeUtc'] as const;
export type FilterField = (typeof FILTERABLE)[number];

/** One clause: the field must equal one of `values` (compared without case, as Defender does for enums). */
export interface Clause {
  field: FilterField;
  values: string[];
}

export type ParsedFilter = { ok: true; clauses: Clause[] } | { ok: false; problem: string };

const quoted = /^'((?:[^']|'')*)'$/;

function literal(text: string): string | undefined {
  const match = quoted.exec(text.trim());
  return match ? match[1]!.replaceAll("''", "'") : undefined;
}

/** Split `text` on ` and ` outside quotes. */
function splitAnd(text: string): string[] {
  const parts: string[] = [];
  let quote = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "'") quote = !quote;
    else if (!quote && /^\sand\s/i.test(text.slice(i, i + 5))) {
      parts.push(text.slice(start, i));
      start = i + 5;
      i += 4;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim());
}

/** Split the inside of `( ... )` on commas outside quotes. */
function splitList(text: string): string[] {
  const items: string[] = [];
  let quote = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "'") quote = !quote;
    else if (!quote && text[i] === ',') {
      items.push(text.slice(start, i));
      start = i + 1;
    }
  }
  items.push(text.slice(start));
  return items;
}

/** Read a `$filter` value; an absent or blank filter is no clause (every action). */
export function parseFilter(filter: string | null | undefined): ParsedFilter {
  if (filter == null || filter.trim() === '') return { ok: true, clauses: [] };
  const clauses: Clause[] = [];
  for (const part of splitAnd(filter)) {
    const match = /^([A-Za-z]+)\s+(eq|in)\s+([\s\S]+)$/.exec(part);
    if (!match) return { ok: false, problem: `cannot read the clause ${JSON.stringify(part)}` };
    const [, name, op, rest] = match as unknown as [string, string, string, string];
    const field = FILTERABLE.find((f) => f.toLowerCase() === name.toLowerCase());
    if (!field) return { ok: false, problem: `${name} is not a filterable field` };
    if (op === 'eq') {
      const value = literal(rest);
      if (value === undefined) return { ok: false, problem: `${name} eq needs a quoted string` };
      clauses.push({ field, values: [value] });
      continue;
    }
    const list = /^\(([\s\S]*)\)$/.exec(rest.trim());
    if (!list) return { ok: false, problem: `${name} in needs a parenthesised list` };
    const values = splitList(list[1]!).map(literal);
    if (values.length === 0 || values.some((v) => v === undefined))
      return { ok: false, problem: `${name} in needs quoted strings` };
    clauses.push({ field, values: values as string[] });
  }
  return { ok: true, clauses };
}

/** Whether a machine action passes every clause. */
export function matches(record: Record<string, unknown>, clauses: Clause[]): boolean {
  return clauses.every((clause) => {
    const value = String(record[clause.field] ?? '').toLowerCase();
    return clause.values.some((v) => v.toLowerCase() === value);
  });
}
