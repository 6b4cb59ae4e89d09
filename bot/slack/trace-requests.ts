import type { AnyMiddlewareArgs, Middleware } from '@slack/bolt';
import { ATTR, withSpan } from '../../adapters/tracing.js';

/**
 * Bolt middleware: a span around each request Slack sends (`slack block_actions`, `slack command`,
 * `slack event_callback`), whichever receiver brought it, so a click's decision, the jobs it queues
 * and the card update they lead to share one trace. The listeners add the ids they read.
 */
export const traceSlackRequests: Middleware<AnyMiddlewareArgs> = async ({ body, next }) => {
  const payload = body as { type?: unknown; command?: unknown };
  const kind =
    typeof payload.type === 'string'
      ? payload.type
      : typeof payload.command === 'string'
        ? 'command'
        : 'request';
  await withSpan(`slack ${kind}`, { [ATTR.platform]: 'slack' }, () => next());
};
