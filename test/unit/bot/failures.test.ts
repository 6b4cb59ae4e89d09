import { describe, expect, it } from 'vitest';
import { failureLog, failureText } from '../../../bot/failures.js';
import { MdrError, StoreUnavailableError } from '../../../core/errors.js';

describe('the failure funnel of Slack and Teams', () => {
  it('tells the person to retry in a minute when the store is down, and whom to tell otherwise', () => {
    expect(failureText(new StoreUnavailableError())).toMatch(/cannot reach its store.*Try again in a minute/);
    expect(failureText(new MdrError('internal', 'no handler'))).toMatch(/tell the bot operator/);
    expect(failureText('not even an error')).toMatch(/tell the bot operator/);
  });

  it('logs what failed without the request a platform error carries', () => {
    const error = Object.assign(new Error('Bot Connector answered 502'), {
      code: 'RestError',
      statusCode: 502,
      request: { headers: { authorization: 'Bearer eyJ0eXAiOiJKV1QiLCJhbGciOi.secret' } },
      response: { headers: { 'set-cookie': 'session=secret' }, bodyAsText: 'x'.repeat(2_000) },
    });

    const logged = failureLog(error);

    expect(logged).toEqual({
      name: 'Error',
      code: 'RestError',
      status: 502,
      message: 'Bot Connector answered 502',
    });
    expect(JSON.stringify(logged)).not.toContain('secret');
  });
});
