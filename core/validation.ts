import type { z } from 'zod';
import { InvalidInputError } from './errors.js';

/** `incident.alerts[0].evidence` from a zod issue path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out;
}

/** Parse with a zod schema; failures become one InvalidInputError naming every bad field. */
export function parseOrThrow<T extends z.ZodType>(schema: T, input: unknown, prefix?: string): z.output<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new InvalidInputError(
    result.error.issues.map((issue) => ({
      path: formatPath(prefix ? [prefix, ...issue.path] : issue.path),
      message: issue.message,
    })),
  );
}
