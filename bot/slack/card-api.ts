import { STATUS_CODES } from 'node:http';
import { webApi } from '@slack/bolt';
import { type HttpResponse, headerOf, request } from '../../adapters/http-client.js';
import { MdrError } from '../../core/errors.js';

/** The Web API methods the card publisher calls, with their answers' fields it reads. */
export interface SlackCardCalls {
  postMessage(args: Record<string, unknown>): Promise<{ ok?: boolean; channel?: string; ts?: string }>;
  update(args: Record<string, unknown>): Promise<{ ok?: boolean; channel?: string; ts?: string }>;
}

/**
 * `chat.postMessage` and `chat.update` for the card deliveries, straight over the shared keep-alive HTTP
 * client (adapters/http-client.ts), with a JSON body (the arguments as they are, blocks an array; the bot
 * token as a Bearer header, never in the body), as Slack recommends for its write methods
 * (https://docs.slack.dev/apis/web-api/#posting_json): form-encoding the card, as `@slack/web-api` does,
 * made most of the call's garbage. Errors are those of `@slack/web-api` (`WebAPIRateLimitedError` for a
 * 429 with Retry-After, `WebAPIHTTPError`, `WebAPIPlatformError` for `ok: false`, `WebAPIRequestError`),
 * so failures are classified as before. Without the client's request queue, retry layer and the redacted
 * JSON copies of every request and answer it builds for its debug log at any level: a delivery makes one
 * or two such calls per incident change, the hottest Slack path.
 */
export class SlackCardApi implements SlackCardCalls {
  private readonly base: string;

  constructor(
    apiUrl: string,
    private readonly token: string,
    private readonly timeoutMs: number,
  ) {
    this.base = apiUrl.endsWith('/') ? apiUrl : `${apiUrl}/`;
  }

  postMessage(args: Record<string, unknown>) {
    return this.call('chat.postMessage', args);
  }

  update(args: Record<string, unknown>) {
    return this.call('chat.update', args);
  }

  private async call(method: string, args: Record<string, unknown>) {
    const body: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(args)) {
      if (value === undefined || value === null || key === 'token') continue;
      body[key] = value;
    }
    let response: HttpResponse;
    try {
      response = await request('POST', `${this.base}${method}`, {
        headers: {
          authorization: `Bearer ${this.token}`,
          'content-type': 'application/json; charset=utf-8',
        },
        body: JSON.stringify(body),
        timeoutMs: this.timeoutMs,
      });
    } catch (error) {
      throw new webApi.WebAPIRequestError(error instanceof Error ? error : new Error(String(error)));
    }
    if (response.status === 429) {
      const retryAfter = Number.parseInt(headerOf(response.headers, 'retry-after') ?? '', 10);
      if (!Number.isNaN(retryAfter)) throw new webApi.WebAPIRateLimitedError(retryAfter);
      throw new MdrError('internal', `Slack answered 429 to ${method} without a valid Retry-After`);
    }
    if (response.status !== 200) {
      throw new webApi.WebAPIHTTPError(
        response.status,
        STATUS_CODES[response.status] ?? '',
        Object.fromEntries(
          Object.entries(response.headers).map(([name, value]) => [
            name,
            Array.isArray(value) ? value.join(', ') : (value ?? ''),
          ]),
        ),
        response.text,
      );
    }
    const result = JSON.parse(response.text) as webApi.WebAPICallResult & { error?: string };
    if (!result.ok) throw new webApi.WebAPIPlatformError({ ...result, error: result.error ?? 'unknown' });
    return result as { ok?: boolean; channel?: string; ts?: string };
  }
}
