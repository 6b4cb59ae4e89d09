/**
 * Adaptive Card templates compiled once into plain functions of their data.
 *
 * The cards' templates (templates/*.json) use the Adaptive Card templating language
 * (https://learn.microsoft.com/adaptive-cards/templating/language): `${path}` bindings, `$data` to
 * repeat an element for each item of a list, `$when` to keep an element only when a condition holds.
 * Expanding them with `adaptivecards-templating` parses every expression with an ANTLR grammar at each
 * render, which was the largest cost of drawing a card. This module compiles the subset the templates
 * use, once, and expands it with the same rules as that library (the card tests compare both):
 *
 * - a string that is exactly one `${path}` takes the value itself (a list, a boolean, a string); a
 *   string mixing text and bindings becomes text; a path with no value is left as `${path}`;
 * - `$data` bound to a list repeats the element for each item (none for an empty list), and the
 *   item is what paths inside it refer to; elements repeated inside a list are spliced into it;
 * - `$when` keeps the element only when the condition is exactly `true`; inside a list a dropped element
 *   leaves no trace, as an object's property it becomes `null`;
 * - conditions: `path`, `path == 'text'`, `path != 'text'`, `path == true|false`, `count(path) > n`,
 *   `count(path) == n` (and the other comparisons).
 *
 * Anything else in a template is refused when it is compiled (at module load), so a template change the
 * compiler does not understand fails every card test instead of rendering differently.
 * Data values are never evaluated: a `${...}` inside incident text stays text.
 */

import { MdrError } from '../../core/errors.js';

/** The data an expression is evaluated against: the current `$data` (the root outside any `$data`). */
type Scope = unknown;
type Evaluate = (scope: Scope) => unknown;
/** A compiled node: its expanded value; `null` when an element is dropped (or repeated zero times). */
type Expand = (scope: Scope) => unknown;

/** Raised when a template uses something this compiler does not implement: a fault of the bot's card. */
export class TemplateCompileError extends MdrError {
  constructor(message: string) {
    super('internal', message);
  }
}

/** Keys of an element that steer the expansion and are never copied to the card. */
const RESERVED = new Set(['$data', '$when', '$root', '$index', '$host', '$_acTemplateVersion']);

const PATH = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** Compile a template once; the result expands it with `data` as `$root`, like `Template.expand`. */
export function compileTemplate(template: unknown): (data: unknown) => unknown {
  const expand = compileNode(template);
  return (data) => expand(data);
}

function compileNode(node: unknown): Expand {
  if (typeof node === 'string') return compileString(node);
  if (Array.isArray(node)) return compileArray(node);
  if (node !== null && typeof node === 'object') return compileObject(node as Record<string, unknown>);
  return () => node;
}

function compileArray(items: unknown[]): Expand {
  const compiled = items.map(compileNode);
  return (scope) => {
    const out: unknown[] = [];
    for (const expand of compiled) {
      const value = expand(scope);
      if (value === null) continue;
      if (Array.isArray(value)) out.push(...value);
      else out.push(value);
    }
    return out;
  };
}

function compileObject(node: Record<string, unknown>): Expand {
  const properties: [string, Expand][] = [];
  for (const [key, value] of Object.entries(node)) {
    if (!RESERVED.has(key)) properties.push([key, compileNode(value)]);
    else if (key !== '$data' && key !== '$when')
      throw new TemplateCompileError(`template keyword ${key} is not supported`);
  }
  const expandOne = (scope: Scope): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [key, expand] of properties) {
      const value = expand(scope);
      if (value !== undefined) out[key] = value;
    }
    return out;
  };
  const when = compileWhen(node.$when);
  const data = compileData(node.$data);
  if (!data && !when) return expandOne;
  return (scope) => {
    let scopes: unknown[];
    if (data) {
      const bound = data(scope);
      scopes = Array.isArray(bound) ? bound : [bound];
    } else scopes = [undefined];
    const out: Record<string, unknown>[] = [];
    for (const item of scopes) {
      const itemScope = item === undefined ? scope : item;
      if (when && when(itemScope) !== true) continue;
      out.push(expandOne(itemScope));
    }
    if (out.length === 0) return null;
    return out.length === 1 ? out[0] : out;
  };
}

function compileData(value: unknown): Evaluate | undefined {
  if (value === undefined) return undefined;
  const binding = typeof value === 'string' ? wholeBinding(value) : undefined;
  if (binding === undefined) throw new TemplateCompileError(`$data must be one \${path}: ${String(value)}`);
  return compilePath(binding, true);
}

function compileWhen(value: unknown): Evaluate | undefined {
  if (value === undefined) return undefined;
  const binding = typeof value === 'string' ? wholeBinding(value) : undefined;
  if (binding === undefined)
    throw new TemplateCompileError(`$when must be one \${condition}: ${String(value)}`);
  return compileCondition(binding);
}

/** The expression of a string that is exactly one `${...}`; undefined otherwise. */
function wholeBinding(text: string): string | undefined {
  const parts = splitBindings(text);
  return parts.length === 1 && typeof parts[0] !== 'string' ? parts[0]?.expression : undefined;
}

/** Text and `${...}` bindings of a template string, in order (empty text parts left out). */
function splitBindings(text: string): (string | { expression: string })[] {
  const parts: (string | { expression: string })[] = [];
  let at = 0;
  while (at < text.length) {
    const start = text.indexOf('${', at);
    if (start < 0) {
      parts.push(text.slice(at));
      break;
    }
    if (start > at) parts.push(text.slice(at, start));
    const end = text.indexOf('}', start + 2);
    if (end < 0) throw new TemplateCompileError(`unclosed binding in ${JSON.stringify(text)}`);
    parts.push({ expression: text.slice(start + 2, end).trim() });
    at = end + 1;
  }
  return parts;
}

function compileString(text: string): Expand {
  if (!text.includes('${')) return () => text;
  for (const ch of ['\\', '`', "'", '"'])
    if (text.includes(ch))
      throw new TemplateCompileError(`quotes and escapes are not supported in ${JSON.stringify(text)}`);
  const parts = splitBindings(text).map((p) => (typeof p === 'string' ? p : compilePath(p.expression, true)));
  const [only] = parts;
  if (parts.length === 1 && typeof only === 'function') return only;
  return (scope) => {
    let out = '';
    for (const part of parts) out += typeof part === 'string' ? part : String(part(scope));
    return out;
  };
}

/**
 * A path into the current scope. With `substitute`, a missing value (undefined or null) reads as the
 * binding itself (`${path}`), as the templating library shows it; without, it is undefined.
 */
function compilePath(expression: string, substitute: boolean): Evaluate {
  if (!PATH.test(expression)) throw new TemplateCompileError(`unsupported binding \${${expression}}`);
  const steps = expression.split('.');
  const missing = substitute ? `\${${expression}}` : undefined;
  return (scope) => {
    let value: unknown = scope;
    for (const step of steps) {
      if (value === null || value === undefined || typeof value !== 'object') return missing;
      value = (value as Record<string, unknown>)[step];
    }
    return value === undefined || value === null ? missing : value;
  };
}

const COMPARISON = /^(count\(\s*([^()]+?)\s*\)|[A-Za-z_][A-Za-z0-9_.]*)\s*(==|!=|>=|<=|>|<)\s*(.+)$/;

function compileCondition(expression: string): Evaluate {
  if (PATH.test(expression)) return compilePath(expression, false);
  const match = COMPARISON.exec(expression);
  if (!match) throw new TemplateCompileError(`unsupported condition \${${expression}}`);
  const [, left = '', countOf, operator = '', right = ''] = match;
  const leftValue: Evaluate = countOf ? countOfPath(compilePath(countOf, false)) : compilePath(left, false);
  const rightValue = literal(right.trim());
  const compare = COMPARE[operator];
  if (!compare) throw new TemplateCompileError(`unsupported operator ${operator}`);
  return (scope) => {
    const value = leftValue(scope);
    return value === undefined ? undefined : compare(value, rightValue);
  };
}

function countOfPath(path: Evaluate): Evaluate {
  return (scope) => {
    const value = path(scope);
    return Array.isArray(value) || typeof value === 'string' ? value.length : undefined;
  };
}

function literal(text: string): string | number | boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  const quoted = /^'([^'\\]*)'$/.exec(text);
  if (quoted) return quoted[1] ?? '';
  throw new TemplateCompileError(`unsupported literal ${text}`);
}

type Compare = (left: unknown, right: string | number | boolean) => boolean | undefined;

const numeric =
  (test: (a: number, b: number) => boolean): Compare =>
  (left, right) =>
    typeof left === 'number' && typeof right === 'number' ? test(left, right) : undefined;

const COMPARE: Record<string, Compare> = {
  '==': (left, right) => left === right,
  '!=': (left, right) => left !== right,
  '>': numeric((a, b) => a > b),
  '<': numeric((a, b) => a < b),
  '>=': numeric((a, b) => a >= b),
  '<=': numeric((a, b) => a <= b),
};
