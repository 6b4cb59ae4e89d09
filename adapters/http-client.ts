// The modules themselves, their `request` read at each call: what replaces it later (an HTTP fake in
// tests, an instrumentation) is used, whichever was loaded first.
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { createSecureContext } from 'node:tls';

/**
 * Sockets kept open between calls, one pool per protocol for the whole process. An idle socket is closed
 * after 4 s, before the 5 s that Node servers (and many proxies) keep one, so a call seldom picks a socket
 * the other side is closing. The default CA store (with NODE_EXTRA_CA_CERTS, as every TLS client of
 * Node) checks https servers, in one TLS context for every connection: Node would otherwise build a new
 * context, CA store included, for each, most of the CPU a new connection costs.
 */
const IDLE_SOCKET_MS = 4_000;
const agents: Partial<Record<string, http.Agent>> = {};

/** The pool of `protocol`, made on its first call (building the TLS context costs milliseconds: not at start). */
function agentFor(protocol: string): http.Agent | undefined {
  const made = agents[protocol];
  if (made) return made;
  const options = { keepAlive: true, timeout: IDLE_SOCKET_MS, scheduling: 'lifo' as const };
  const agent =
    protocol === 'http:'
      ? new http.Agent(options)
      : protocol === 'https:'
        ? new https.Agent({ ...options, secureContext: createSecureContext() })
        : undefined;
  if (agent) agents[protocol] = agent;
  return agent;
}

/** Larger answers are refused: the platform APIs called answer a few kilobytes. */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/** What a call sends: headers, a body, its bound in time and an optional signal to abort it. */
export interface HttpRequestOptions {
  headers?: Record<string, string>;
  body?: string;
  /** The whole call (connecting, sending, the answer read to its end) must finish within this. */
  timeoutMs: number;
  signal?: AbortSignal;
}

/** An answer, whatever its status (a 3xx is returned, not followed). */
export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** Why a call got no answer: `ETIMEDOUT` (its bound), `ABORT_ERR` (its signal), or the socket's error code. */
export class HttpRequestError extends Error {
  override readonly name: 'TimeoutError' | 'AbortError' | 'HttpRequestError';

  constructor(
    message: string,
    readonly code: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options);
    this.name =
      code === 'ETIMEDOUT' ? 'TimeoutError' : code === 'ABORT_ERR' ? 'AbortError' : 'HttpRequestError';
  }
}

/** One HTTP(S) call over the shared keep-alive sockets, bounded in time; no redirect is followed. */
export function request(
  method: string,
  url: string | URL,
  options: HttpRequestOptions,
): Promise<HttpResponse> {
  const target = typeof url === 'string' ? new URL(url) : url;
  const agent = agentFor(target.protocol);
  if (!agent)
    return Promise.reject(new TypeError(`only http and https URLs can be called, not ${target.protocol}`));
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(new HttpRequestError('the call was aborted', 'ABORT_ERR'));
  const send = target.protocol === 'https:' ? https.request : http.request;
  // Written as the string it is (no copy into a Buffer on the heap); its length in bytes announced.
  const { body } = options;
  const headers: Record<string, string | number> = { ...options.headers };
  if (body !== undefined) headers['content-length'] = Buffer.byteLength(body, 'utf8');

  return new Promise<HttpResponse>((resolve, reject) => {
    let settled = false;
    const req = send(target, { method, agent, headers });
    const fail = (error: HttpRequestError) => {
      if (settled) return;
      settled = true;
      cleanUp();
      // The socket is not reused: the answer was not read to its end.
      req.destroy();
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new HttpRequestError(`no answer within ${options.timeoutMs} ms`, 'ETIMEDOUT')),
      options.timeoutMs,
    );
    const onAbort = () =>
      fail(new HttpRequestError('the call was aborted', 'ABORT_ERR', { cause: signal?.reason }));
    signal?.addEventListener('abort', onAbort, { once: true });
    const cleanUp = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };

    req.on('error', (error: NodeJS.ErrnoException) =>
      fail(
        new HttpRequestError(`${method} ${target.host}: ${error.message}`, error.code ?? 'ERR_REQUEST', {
          cause: error,
        }),
      ),
    );
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES)
          fail(
            new HttpRequestError(
              `the answer is larger than ${MAX_RESPONSE_BYTES} bytes`,
              'ERR_RESPONSE_TOO_LARGE',
            ),
          );
        else chunks.push(chunk);
      });
      res.on('error', (error: NodeJS.ErrnoException) =>
        fail(
          new HttpRequestError(`${method} ${target.host}: ${error.message}`, error.code ?? 'ERR_RESPONSE', {
            cause: error,
          }),
        ),
      );
      res.on('close', () => {
        if (!res.complete)
          fail(new HttpRequestError(`${method} ${target.host}: the answer ended early`, 'ECONNRESET'));
      });
      res.on('end', () => {
        if (settled) return;
        settled = true;
        cleanUp();
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text:
            chunks.length === 1
              ? (chunks[0] as Buffer).toString('utf8')
              : Buffer.concat(chunks).toString('utf8'),
        });
      });
    });
    if (body === undefined) req.end();
    else req.end(body, 'utf8');
  });
}

/** A header of an answer as one string (the first value of a repeated one). */
export function headerOf(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * A `Retry-After` value in ms from `nowMs`: delay-seconds (`"30"`, `"1.5"`) or an HTTP date; undefined
 * when absent or unreadable.
 */
export function retryAfterMsOf(value: string | null | undefined, nowMs = Date.now()): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
