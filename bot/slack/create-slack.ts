import { App, type Logger as BoltLogger, ExpressReceiver, LogLevel } from '@slack/bolt';
import type { RequestHandler } from 'express';
import { MdrError } from '../../core/errors.js';
import { type CardPublisher, PLATFORM_CALL_TIMEOUT_MS } from '../delivery.js';
import { sendError } from '../http-errors.js';
import type { Logger } from '../logger.js';
import type { Runtime } from '../runtime.js';
import type { ReadinessCheck } from '../server.js';
import type { Backoff } from './backoff.js';
import { registerButtonActions } from './button-actions.js';
import { SlackCardApi } from './card-api.js';
import { SlackCardPublisher } from './card-publisher.js';
import { slackPayloadGuard } from './payload-guard.js';
import { registerSkipModal } from './skip-modal.js';
import { registerSlashCommand } from './slash-command.js';
import { SlackSocketReceiver } from './socket-mode.js';
import { traceSlackRequests } from './trace-requests.js';
import { SlackWorkspace, workspaceGuard } from './workspace.js';

/** The Slack side of the bot: the request handler for `POST /slack/events`, the card publisher, the Bolt app. */
export interface Slack {
  handler: RequestHandler;
  publisher: CardPublisher;
  app: App;
  /** The workspace of the bot token (`auth.test`), the only one served. */
  workspace: SlackWorkspace;
  /** Socket Mode only: not ready while the socket is down (for `/readyz`). */
  readiness?: ReadinessCheck;
}

/** Where Slack sends events, button clicks and slash commands (fixed route). */
export const SLACK_EVENTS_PATH = '/slack/events';

/** Web API calls waiting longer than this fail, well inside the delivery lease and the job lock. */
const WEB_API_TIMEOUT_MS = PLATFORM_CALL_TIMEOUT_MS;

/** What `POST /slack/events` answers in Socket Mode, where nothing is received over HTTP. */
export const SOCKET_MODE_HTTP_MESSAGE =
  'Slack runs in Socket Mode (SLACK_APP_TOKEN is set): events, clicks and /mdr arrive over the socket, not at POST /slack/events. To receive them here instead, unset SLACK_APP_TOKEN and set SLACK_SIGNING_SECRET.';

/**
 * Build the Slack app from `runtime.config.slack`. Over HTTP: Bolt with signature verification (401 on
 * a missing, forged or over five minutes old signature); mount `handler` at `POST /slack/events`. With
 * an app-level token: Socket Mode (the socket is opened now and kept open; `readiness` says when it is
 * down), and `handler` answers 404. Either way the same guard serves only the bot token's workspace
 * (read with `auth.test`, retried in the background with `options.authRetry`), the same listeners
 * handle buttons, the Skip modal and `/mdr`, and a card publisher is added to `runtime.publishers`.
 */
export function createSlack(
  runtime: Runtime,
  options: { authRetry?: Backoff; socketRetry?: Backoff } = {},
): Slack {
  const { config } = runtime;
  if (!config.slack) {
    throw new MdrError(
      'config_invalid',
      'Slack is not configured: set SLACK_BOT_TOKEN with SLACK_SIGNING_SECRET, or with SLACK_APP_TOKEN for Socket Mode',
    );
  }
  const { botToken, signingSecret, appToken, apiUrl } = config.slack;
  const logger = boltLogger(runtime.logger.child({ component: 'slack' }));
  let receiver: ExpressReceiver | SlackSocketReceiver;
  let handler: RequestHandler;
  if (appToken) {
    receiver = new SlackSocketReceiver({
      appToken,
      apiUrl,
      logger: runtime.logger,
      boltLogger: logger,
      timeoutMs: WEB_API_TIMEOUT_MS,
      ...(options.socketRetry ? { retry: options.socketRetry } : {}),
    });
    handler = (_req, res) => {
      sendError(res, 404, 'not_found', SOCKET_MODE_HTTP_MESSAGE);
    };
  } else if (signingSecret) {
    const http = new ExpressReceiver({
      signingSecret,
      endpoints: SLACK_EVENTS_PATH,
      logger,
      processBeforeResponse: false,
    });
    const guard = slackPayloadGuard(signingSecret, runtime.logger);
    handler = (req, res, next) => {
      guard(req, res, (error?: unknown) => (error ? next(error) : http.router(req, res, next)));
    };
    receiver = http;
  } else {
    throw new MdrError(
      'config_invalid',
      'Slack needs SLACK_SIGNING_SECRET, or SLACK_APP_TOKEN for Socket Mode',
    );
  }
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

  const publisher = new SlackCardPublisher(
    app.client,
    botToken,
    runtime,
    new SlackCardApi(apiUrl, botToken, WEB_API_TIMEOUT_MS),
  );
  runtime.publishers.push(publisher);
  workspace.start();
  const socket = receiver instanceof SlackSocketReceiver ? receiver : undefined;
  void socket?.start();
  const close = runtime.close;
  runtime.close = async () => {
    workspace.stop();
    await socket?.stop();
    await close();
  };
  return { handler, publisher, app, workspace, ...(socket ? { readiness: socket.readiness } : {}) };
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
