import { setTimeout as sleep } from 'node:timers/promises';
import pRetry, { AbortError } from 'p-retry';

/** A send limit: at most `limit` sends in any `ms` milliseconds. */
export interface RateWindow {
  limit: number;
  ms: number;
}

/** Teams' limits per bot per conversation: 7 sends a second and 60 in 30 seconds. */
export const TEAMS_CONVERSATION_LIMITS: readonly RateWindow[] = [
  { limit: 7, ms: 1_000 },
  { limit: 60, ms: 30_000 },
];

/** How long to wait before the next send, given earlier send times (ascending) and the windows. */
export function rateLimitDelay(sent: readonly number[], now: number, windows: readonly RateWindow[]): number {
  let wait = 0;
  for (const window of windows) {
    const recent = sent.filter((t) => t > now - window.ms);
    if (recent.length < window.limit) continue;
    const oldestToExpire = recent[recent.length - window.limit] ?? now;
    wait = Math.max(wait, oldestToExpire + window.ms - now + 1);
  }
  return wait;
}

/** Keeps this process's sends to each conversation inside Teams' limits (waits, never drops). */
export class ConversationRateLimiter {
  private readonly sent = new Map<string, number[]>();
  private readonly longest: number;

  constructor(
    private readonly windows: readonly RateWindow[] = TEAMS_CONVERSATION_LIMITS,
    private readonly now: () => number = Date.now,
  ) {
    this.longest = Math.max(...windows.map((w) => w.ms));
  }

  /** Wait until a send to `conversationId` is allowed, then count it. */
  async take(conversationId: string): Promise<void> {
    for (;;) {
      const now = this.now();
      const times = (this.sent.get(conversationId) ?? []).filter((t) => t > now - this.longest);
      const wait = rateLimitDelay(times, now, this.windows);
      if (wait <= 0) {
        times.push(now);
        this.sent.set(conversationId, times);
        return;
      }
      this.sent.set(conversationId, times);
      await sleep(wait);
    }
  }
}

/** Statuses Teams asks a bot to retry with back-off: throttled, precondition failed, bad gateway, timeout. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([412, 429, 502, 504]);

/** Thrown when Teams still refuses after the retries: the delivery job fails and the queue retries it later. */
export class TeamsRetryableError extends Error {
  readonly code = 'teams_retryable';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'TeamsRetryableError';
  }
}

/** Options of withTeamsRetry. */
export interface RetryOptions {
  /** Tries in all, the first included (default 4). */
  attempts?: number;
  /** First back-off ceiling in ms, doubled each retry (default 500). */
  baseMs?: number;
  /** Largest single wait in ms (default 8,000). */
  maxMs?: number;
  random?: () => number;
  sleep?: (ms: number) => Promise<unknown>;
  /** Called before each wait (for the log). */
  onRetry?: (info: { status: number; attempt: number; waitMs: number }) => void;
}

/** The HTTP status of a failed Bot Connector call, when it has one. */
export function statusOf(error: unknown): number | undefined {
  const e = error as { statusCode?: unknown; status?: unknown; response?: { status?: unknown } };
  for (const v of [e?.statusCode, e?.status, e?.response?.status]) if (typeof v === 'number') return v;
  return undefined;
}

/** The error code in a Bot Connector error body (`{"error": {"code": "MessageWritesBlocked"}}`). */
export function connectorErrorCode(error: unknown): string | undefined {
  const e = error as {
    code?: unknown;
    body?: { error?: { code?: unknown } };
    details?: { error?: { code?: unknown } };
    response?: { bodyAsText?: unknown; parsedBody?: { error?: { code?: unknown } } };
  };
  const candidates: unknown[] = [
    e?.body?.error?.code,
    e?.details?.error?.code,
    e?.response?.parsedBody?.error?.code,
  ];
  const text = e?.response?.bodyAsText;
  if (typeof text === 'string') {
    try {
      candidates.push((JSON.parse(text) as { error?: { code?: unknown } }).error?.code);
    } catch {
      // not JSON: no code in it
    }
  }
  candidates.push(e?.code);
  return candidates.find((c): c is string => typeof c === 'string' && c.length > 0);
}

function retryAfterMs(error: unknown): number {
  const headers = (error as { response?: { headers?: { get?: (n: string) => string | undefined } } })
    ?.response?.headers;
  const value = typeof headers?.get === 'function' ? headers.get('retry-after') : undefined;
  const seconds = Number(value);
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1_000 : 0;
}

/**
 * Run a Bot Connector call, retrying 412, 429, 502 and 504 with exponential back-off and full jitter
 * (never shorter than a `Retry-After`). Bounded: after the last try it throws TeamsRetryableError so the
 * durable queue retries the whole job later.
 */
export async function withTeamsRetry<T>(call: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 4;
  const baseMs = options.baseMs ?? 500;
  const maxMs = options.maxMs ?? 8_000;
  const random = options.random ?? Math.random;
  const wait = options.sleep ?? sleep;
  let lastStatus = 0;
  try {
    // p-retry counts the attempts; the jittered wait (never below Retry-After) is ours.
    return await pRetry(
      async () => {
        try {
          return await call();
        } catch (error) {
          const status = statusOf(error);
          if (status === undefined || !RETRYABLE_STATUSES.has(status)) throw new AbortError(asError(error));
          lastStatus = status;
          throw error;
        }
      },
      {
        retries: attempts - 1,
        minTimeout: 0,
        maxTimeout: 0,
        randomize: false,
        onFailedAttempt: async (failure) => {
          if (failure.retriesLeft === 0) return;
          const attempt = failure.attemptNumber;
          const ceiling = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
          const waitMs = Math.min(maxMs * 4, Math.max(retryAfterMs(failure), Math.round(random() * ceiling)));
          options.onRetry?.({ status: lastStatus, attempt, waitMs });
          await wait(waitMs);
        },
      },
    );
  } catch (error) {
    if (
      error instanceof Error &&
      statusOf(error) !== undefined &&
      RETRYABLE_STATUSES.has(statusOf(error) as number)
    ) {
      throw new TeamsRetryableError(
        `Teams answered ${lastStatus} ${attempts} times in a row; the delivery will be retried later`,
        lastStatus,
      );
    }
    throw error;
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
