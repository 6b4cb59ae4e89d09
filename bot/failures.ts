import { MdrError } from '../core/errors.js';

/**
 * The sentence the person in Slack or Teams sees when the bot itself failed (not a refusal): what
 * happened to their request and what to do next.
 */
export function failureText(error: unknown): string {
  if (error instanceof MdrError && error.code === 'store_unavailable')
    return 'The bot cannot reach its store right now: nothing was recorded. Try again in a minute.';
  return 'Something went wrong in the bot: nothing was recorded. Try again; if it persists, tell the bot operator.';
}

/**
 * What the log says about a failure: its kind, code, HTTP status and message (bounded), never the
 * request or response objects a platform SDK attaches to its errors, which carry tokens.
 */
export function failureLog(error: unknown): {
  name: string;
  code?: string;
  status?: number;
  message: string;
} {
  if (!(error instanceof Error)) return { name: typeof error, message: String(error).slice(0, 500) };
  const { code, statusCode } = error as { code?: unknown; statusCode?: unknown };
  return {
    name: error.name,
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof statusCode === 'number' ? { status: statusCode } : {}),
    message: error.message.slice(0, 500),
  };
}
