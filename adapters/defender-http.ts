import type { TokenCredential } from '@azure/identity';
import { SpanStatusCode } from '@opentelemetry/api';
import pRetry from 'p-retry';
import { scopeFor } from './azure-scope.js';
import { backoffMs } from './backoff.js';
import { type HttpResponse, headerOf, request as httpRequest, retryAfterMsOf } from './http-client.js';
import { withClientSpan } from './tracing.js';

/**
 * A result worth another attempt, carried through p-retry (which retries on a thrown Error) with the
 * wait it asks for. Control flow inside `sendWithRetries` only: it is always caught there and turned
 * back into the result, never seen by a caller.
 */
class RetryableResult extends Error {
  attemptNumber = 0;
  retriesLeft = 0;
  constructor(
    readonly result: HttpResult,
    readonly waitMs: number,
  ) {
    super('retryable result');
  }
}

/** The few pino methods the Defender adapters log with (a pino logger fits). */
export interface AdapterLogger {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

/** The longest back-off wait between two attempts of a call. */
export const MAX_BACKOFF_MS = 30_000;

const silentLogger: AdapterLogger = { info: () => {}, warn: () => {} };

/** Bounded retry settings shared by the Defender executor and directory. */
export interface RetryOptions {
  /** Retries after the first attempt for 429, 5xx and network errors (default 3). */
  maxRetries?: number;
  /** First back-off wait; doubled on each retry, capped at 30 s (default 1000 ms). */
  retryBaseMs?: number;
  /** A `Retry-After` longer than this is not waited for: the call fails (default 120 s). */
  maxRetryAfterMs?: number;
  /** Per-request time limit (default 30 s). */
  requestTimeoutMs?: number;
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
  logger?: AdapterLogger;
}

/** One API the adapters talk to: Defender for Endpoint or Microsoft Graph. */
export interface ApiEndpoint {
  /** Name used in messages: "Defender" or "Microsoft Graph". */
  service: string;
  baseUrl: string;
}

/** The headers of an answer, read by name (a fetch `Headers` fits). */
export interface ResponseHeaders {
  get(name: string): string | null;
}

/** What came back: a response (any status), or why none did. */
export type HttpResult =
  | {
      kind: 'response';
      status: number;
      /** A 2xx status. */
      ok: boolean;
      headers: ResponseHeaders;
      body: unknown;
      /** Retries spent before this answer. */
      attempts: number;
    }
  | { kind: 'network'; message: string; attempts: number }
  | { kind: 'token'; message: string; attempts: number };

/** A call that did not succeed, with its reason worded for the person who reads it. */
export interface ApiFailure {
  ok: false;
  /** Readable and secret-free (see `describeFailure`). */
  reason: string;
  /** The answer's status; absent when none came. */
  status?: number;
  /** How long the answer's `Retry-After` asks to wait (ms), when it says. */
  retryAfter?: number;
  /** The answer's body, whose `error.code` tells some refusals apart. */
  body?: unknown;
  /** Why no answer came: the service was not reached, or no token was issued. */
  fault?: 'network' | 'token';
}

/** What one call came to: a 2xx answer, or why there was none. */
export type ApiOutcome = { ok: true; status: number; body: unknown; headers: ResponseHeaders } | ApiFailure;

/**
 * Whether a failure may pass by itself: the service was not reached or answered 5xx, and with
 * `throttled`, a 429 as well. Anything else is a refusal that another attempt would meet again.
 */
export function isPassing(failure: ApiFailure, throttled = false): boolean {
  if (failure.fault === 'network') return true;
  const status = failure.status ?? 0;
  return status >= 500 || (throttled && status === 429);
}

/** Quote a value as an OData string literal (`'it''s'`). */
export function odataString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** A request relative to an API's base URL, or an absolute `nextLink` on the same origin. */
export interface HttpRequest {
  method: 'GET' | 'POST' | 'PATCH';
  path: string;
  query?: Record<string, string>;
  body?: unknown;
  /**
   * `true` (default): 429, 5xx and network errors are retried. `false`: only 429 is retried (the
   * service refused the request, so it did not act on it); anything else returns to the caller, who
   * must find out whether the request took effect before sending it again.
   */
  retryUnsafe?: boolean;
  /** `wait` (default): a 429 is retried after its Retry-After. `return`: it comes back at once (the caller re-schedules). */
  on429?: 'wait' | 'return';
  /** Retries after the first attempt, instead of the client's `maxRetries` (0: one attempt only). */
  retries?: number;
  /** Extra request headers (e.g. Graph's `Prefer`); they never replace authorization or accept. */
  headers?: Record<string, string>;
}

/**
 * Append a path (and query) to a base URL that may carry a path prefix:
 * `joinUrl('https://h/prefix', '/api/x')` is `https://h/prefix/api/x` (where `new URL(path, base)`
 * would drop the prefix). Query values are percent-encoded; `$` in OData keys is kept.
 */
export function joinUrl(baseUrl: string, path: string, query?: Record<string, string>): string {
  const url = new URL(baseUrl);
  const prefix = url.pathname.replace(/\/+$/, '');
  const tail = path.startsWith('/') ? path : `/${path}`;
  url.pathname = `${prefix}${tail}`;
  url.search = '';
  url.hash = '';
  const qs = Object.entries(query ?? {})
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join('&');
  return qs ? `${url.toString()}?${qs}` : url.toString();
}

/** Seconds or an HTTP date, as `Retry-After` may carry; undefined when absent or unreadable. */
export function retryAfterMs(headers: ResponseHeaders, nowMs = Date.now()): number | undefined {
  return retryAfterMsOf(headers.get('retry-after'), nowMs);
}

/** `{error: {code, message}}` of a Defender or Graph error body, when there is one. */
export function apiError(body: unknown): { code?: string; message?: string } {
  if (typeof body !== 'object' || body === null || !('error' in body)) return {};
  const error = (body as { error: unknown }).error;
  if (typeof error !== 'object' || error === null) return {};
  const { code, message } = error as { code?: unknown; message?: unknown };
  return {
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof message === 'string' ? { message } : {}),
  };
}

/** What a failed call should say for each status class. */
export interface FailureWording {
  /** The application permission the call needs, named on 401/403. */
  permission: string;
  /** What a 404 means here ("device 1e5b... was not found in Defender"). */
  notFound: string;
  /** The call, for context ("POST isolate"). */
  what: string;
}

/** A readable, secret-free reason for a call that did not succeed. */
export function describeFailure(service: string, result: HttpResult, wording: FailureWording): string {
  if (result.kind === 'token') return `could not get an access token for ${service}: ${result.message}`;
  const tries = result.attempts > 0 ? ` after ${result.attempts + 1} attempts` : '';
  if (result.kind === 'network') {
    return `${service} could not be reached for ${wording.what}${tries} (${result.message})`;
  }
  const { code, message } = apiError(result.body);
  const said = [code, message].filter(Boolean).join(': ');
  const suffix = said ? ` (${said})` : '';
  switch (result.status) {
    case 401:
      return `${service} answered 401 Unauthorized to ${wording.what}: the token was refused; check the app registration and that admin consent was granted for ${wording.permission}${suffix}`;
    case 403:
      return `${service} answered 403 Forbidden to ${wording.what}: the app registration lacks the application permission ${wording.permission} (grant it and give admin consent)${suffix}`;
    case 404:
      return `${wording.notFound} (${service} answered 404 to ${wording.what})`;
    case 429: {
      const wait = retryAfterMs(result.headers);
      const after = wait === undefined ? '' : `; it asks to retry after ${Math.ceil(wait / 1000)} s`;
      return `${service} is throttling requests (429) for ${wording.what}${tries}${after}`;
    }
    default:
      return `${service} answered ${result.status} to ${wording.what}${tries}${suffix}`;
  }
}

/** The outcome of a call: its answer when 2xx, else the reason `describeFailure` words for it. */
export function outcomeOf(service: string, result: HttpResult, wording: FailureWording): ApiOutcome {
  if (result.kind === 'response' && result.ok) {
    return { ok: true, status: result.status, body: result.body, headers: result.headers };
  }
  const reason = describeFailure(service, result, wording);
  if (result.kind !== 'response') return { ok: false, reason, fault: result.kind };
  const wait = retryAfterMs(result.headers);
  return {
    ok: false,
    reason,
    status: result.status,
    body: result.body,
    ...(wait !== undefined ? { retryAfter: wait } : {}),
  };
}

const sleepReal = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Authenticated JSON calls to Defender or Graph with bounded retries: 429 waits `Retry-After`, 5xx and
 * network errors back off exponentially (only for requests marked safe to repeat). A bearer token is
 * asked of the credential for every request (it caches them). Tokens are never logged. Calls go over
 * the process's keep-alive sockets (adapters/http-client.ts), as the card calls do.
 */
export class ApiClient {
  readonly service: string;
  private readonly baseUrl: string;
  private readonly scope: string;
  private readonly origin: string;
  private readonly maxRetries: number;
  private readonly retryBaseMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly requestTimeoutMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly logger: AdapterLogger;

  constructor(
    private readonly credential: TokenCredential,
    endpoint: ApiEndpoint,
    options: RetryOptions = {},
  ) {
    this.service = endpoint.service;
    this.baseUrl = endpoint.baseUrl;
    this.scope = scopeFor(endpoint.baseUrl);
    this.origin = new URL(endpoint.baseUrl).origin;
    this.maxRetries = options.maxRetries ?? 3;
    this.retryBaseMs = options.retryBaseMs ?? 1000;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 120_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.sleep = options.sleep ?? sleepReal;
    this.logger = options.logger ?? silentLogger;
  }

  /** The full URL of a path under this API's base URL. */
  url(path: string, query?: Record<string, string>): string {
    return joinUrl(this.baseUrl, path, query);
  }

  /** Whether an absolute URL (an `@odata.nextLink`) may be sent this API's token. */
  sameOrigin(absoluteUrl: string): boolean {
    try {
      return new URL(absoluteUrl).origin === this.origin;
    } catch {
      return false;
    }
  }

  /** Send one request as `send` does, and say what it came to (see `outcomeOf`). */
  async call(request: HttpRequest, wording: FailureWording): Promise<ApiOutcome> {
    return outcomeOf(this.service, await this.send(request), wording);
  }

  /** Send one request, retrying as its `retryUnsafe` allows. Never throws for HTTP or network faults. */
  async send(request: HttpRequest): Promise<HttpResult> {
    const url = /^https?:\/\//.test(request.path) ? request.path : this.url(request.path, request.query);
    // One span per call, retries included: the service, method and answer, never the URL's ids or query.
    const attributes = { 'http.request.method': request.method, 'server.address': hostOf(url) };
    return withClientSpan(`${this.service} ${request.method}`, attributes, async (span) => {
      const result = await this.sendWithRetries(request, url);
      span.setAttribute('mdr.http.retries', result.attempts);
      if (result.kind === 'response') {
        span.setAttribute('http.response.status_code', result.status);
        if (!result.ok) span.setStatus({ code: SpanStatusCode.ERROR });
      } else {
        span.setAttributes({ 'error.type': result.kind });
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
      return result;
    });
  }

  private async sendWithRetries(request: HttpRequest, url: string): Promise<HttpResult> {
    const retryUnsafe = request.retryUnsafe ?? true;
    try {
      // p-retry counts the attempts; the wait (Retry-After or back-off) is ours, slept in onFailedAttempt.
      return await pRetry(
        async (attemptNumber) => {
          const result = await this.once(request, url, attemptNumber - 1);
          const wait = this.retryWait(result, attemptNumber - 1, retryUnsafe, request.on429 ?? 'wait');
          if (wait === undefined) return result;
          throw new RetryableResult(result, wait);
        },
        {
          retries: request.retries ?? this.maxRetries,
          minTimeout: 0,
          maxTimeout: 0,
          randomize: false,
          onFailedAttempt: async (error) => {
            if (!(error instanceof RetryableResult) || error.retriesLeft === 0) return;
            const { result, waitMs } = error;
            this.logger.warn(
              {
                service: this.service,
                method: request.method,
                path: new URL(url).pathname,
                status: result.kind === 'response' ? result.status : undefined,
                error: result.kind === 'network' ? result.message : undefined,
                retryInMs: waitMs,
                attempt: error.attemptNumber,
              },
              `${this.service} call failed; retrying`,
            );
            await this.sleep(waitMs);
          },
        },
      );
    } catch (error) {
      if (error instanceof RetryableResult) return error.result;
      throw error;
    }
  }

  /** How long to wait before trying `result` again, or undefined when it is final. */
  private retryWait(
    result: HttpResult,
    attempt: number,
    retryUnsafe: boolean,
    on429: 'wait' | 'return',
  ): number | undefined {
    if (result.kind === 'token') return undefined;
    if (result.kind === 'network') return retryUnsafe ? this.backoff(attempt) : undefined;
    if (result.status === 429) {
      if (on429 === 'return') return undefined;
      const wait = retryAfterMs(result.headers) ?? this.backoff(attempt);
      return wait > this.maxRetryAfterMs ? undefined : wait;
    }
    if (result.status >= 500 && retryUnsafe) {
      return Math.min(retryAfterMs(result.headers) ?? this.backoff(attempt), this.maxRetryAfterMs);
    }
    return undefined;
  }

  private backoff(attempt: number): number {
    return backoffMs(this.retryBaseMs, attempt, MAX_BACKOFF_MS);
  }

  private async once(request: HttpRequest, url: string, attempts: number): Promise<HttpResult> {
    let token: string;
    try {
      const got = await this.credential.getToken(this.scope);
      if (!got) return { kind: 'token', message: `no token was issued for ${this.scope}`, attempts };
      token = got.token;
    } catch (error) {
      const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
      return {
        kind: 'token',
        message: `${message} (check DEFENDER_TENANT_ID, DEFENDER_CLIENT_ID, DEFENDER_CLIENT_SECRET and AZURE_AUTHORITY_HOST)`,
        attempts,
      };
    }
    const headers: Record<string, string> = {
      ...request.headers,
      authorization: `Bearer ${token}`,
      accept: 'application/json',
    };
    if (request.body !== undefined) headers['content-type'] = 'application/json';
    let response: HttpResponse;
    try {
      response = await httpRequest(request.method, url, {
        headers,
        ...(request.body !== undefined ? { body: JSON.stringify(request.body) } : {}),
        timeoutMs: this.requestTimeoutMs,
      });
    } catch (error) {
      return { kind: 'network', message: networkMessage(error), attempts };
    }
    const { text } = response;
    let body: unknown = text;
    if (text.trim() !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        // Not JSON (a gateway's HTML error page, say): keep the text for the message.
      }
    }
    const answered = response.headers;
    return {
      kind: 'response',
      status: response.status,
      ok: response.status >= 200 && response.status < 300,
      headers: { get: (name) => headerOf(answered, name) ?? null },
      body,
      attempts,
    };
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return 'invalid';
  }
}

function networkMessage(error: unknown): string {
  if (!(error instanceof Error)) return String(error).slice(0, 300);
  if (error.name === 'TimeoutError') return 'the request timed out';
  const cause = (error as { cause?: unknown }).cause;
  const text = cause instanceof Error ? `${error.message}: ${cause.message}` : error.message;
  return text.split('\n')[0]?.slice(0, 300) ?? text;
}
