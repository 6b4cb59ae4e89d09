import { App, type Logger as BoltLogger, ExpressReceiver, LogLevel } from '@slack/bolt';
import type { RequestHandler } from 'express';
import { MdrError } from '../../core/errors.js';
import { type CardPublisher, PLATFORM_CALL_TIMEOUT_MS } from '../delivery.js';
import type { Logger } from '../logger.js';
import type { Runtime } from '../runtime.js';
import { registerButtonActions } from './button-actions.js';
import { SlackCardPublisher } from './card-publisher.js';
import { slackPayloadGuard } from './payload-guard.js';
import { registerSkipModal } from './skip-modal.js';
import { registerSlashCommand } from './slash-command.js';
import { traceSlackRequests } from './trace-requests.js';
import { type AuthRetry, SlackWorkspace, workspaceGuard } from './workspace.js';

/** The Slack side of the bot: the request handler for `POST /slack/events`, the card publisher, the Bolt app. */
export interface Slack {
  handler: RequestHandler;
  publisher: CardPublisher;
  app: App;
  /** The workspace of the bot token (`auth.test`), the only one served. */
  workspace: SlackWorkspace;
}

/** Where Slack sends events, button clicks and slash commands (fixed route). */
export const SLACK_EVENTS_PATH = '/slack/events';

/** Web API calls waiting longer than this fail, well inside the delivery lease and the job lock. */
const WEB_API_TIMEOUT_MS = PLATFORM_CALL_TIMEOUT_MS;

/**
 * Build the Slack app from `runtime.config.slack`: Bolt with signature verification (401 on a missing,
 * forged or over five minutes old signature), a guard that serves only the bot token's workspace
 * (read with `auth.test`, retried in the background with `options.authRetry`), listeners for buttons
 * and `/mdr`, the Skip modal, and a card publisher, which it adds to `runtime.publishers`. Mount `handler` at
 * `POST /slack/events`.
 */
export function createSlack(runtime: Runtime, options: { authRetry?: AuthRetry } = {}): Slack {
  const { config } = runtime;
  if (!config.slack) {
    throw new MdrError(
      'config_invalid',
      'Slack is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET',
    );
  }
  const { botToken, signingSecret, apiUrl } = config.slack;
  const logger = boltLogger(runtime.logger.child({ component: 'slack' }));
  const receiver = new ExpressReceiver({
    signingSecret,
    endpoints: SLACK_EVENTS_PATH,
    logger,
    processBeforeResponse: false,
  });
  const app = new App({
    receiver,
    logger,
    // One workspace, one token. Bolt's own auth.test at start would fail unhandled when Slack is
    // unreachable: SlackWorkspace calls it instead, retrying, and the guard fails closed meanwhile.
    authorize: async () => ({ botToken }),
    // The bot listens to no message events, so there is nothing of its own to ignore.
    ignoreSelf: false,
    clientOptions: {
      slackApiUrl: apiUrl,
      // One retry layer: the job queue. The client neither retries nor waits out 429s itself.
      retryConfig: { retries: 0 },
      rejectRateLimitedCalls: true,
      timeout: WEB_API_TIMEOUT_MS,
    },
  });
  app.error(async (error) => {
    runtime.logger.error({ err: error, component: 'slack' }, 'slack listener failed');
  });
  const workspace = new SlackWorkspace(app.client, botToken, runtime.logger, options.authRetry);
  app.use(traceSlackRequests);
  app.use(workspaceGuard(workspace, runtime));
  registerButtonActions(app, runtime);
  registerSkipModal(app, runtime);
  registerSlashCommand(app, runtime);

  const publisher = new SlackCardPublisher(app.client, botToken, runtime);
  runtime.publishers.push(publisher);
  workspace.start();
  const close = runtime.close;
  runtime.close = async () => {
    workspace.stop();
    await close();
  };
  const guard = slackPayloadGuard(signingSecret, runtime.logger);
  const handler: RequestHandler = (req, res, next) => {
    guard(req, res, (error?: unknown) => (error ? next(error) : receiver.router(req, res, next)));
  };
  return { handler, publisher, app, workspace };
}

/** Bolt's logger interface on top of the process logger. */
function boltLogger(log: Logger): BoltLogger {
  let level = LogLevel.INFO;
  const text = (parts: unknown[]) =>
    parts
      .map((p) => (typeof p === 'string' ? p : p instanceof Error ? p.message : JSON.stringify(p)))
      .join(' ');
  return {
    debug: (...msg: unknown[]) => log.debug(text(msg)),
    info: (...msg: unknown[]) => log.info(text(msg)),
    warn: (...msg: unknown[]) => log.warn(text(msg)),
    error: (...msg: unknown[]) => log.error(text(msg)),
    setLevel: (next: LogLevel) => {
      level = next;
    },
    getLevel: () => level,
    setName: () => {},
  };
}
