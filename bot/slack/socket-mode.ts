import {
  type AckFn,
  type App,
  type Logger as BoltLogger,
  type Receiver,
  type ReceiverEvent,
  SocketModeReceiver,
  webApi,
} from '@slack/bolt';
import { backoffMs } from '../../adapters/backoff.js';
import type { Logger } from '../logger.js';
import type { ReadinessCheck } from '../server.js';
import { type Backoff, DEFAULT_BACKOFF } from './backoff.js';
import { socketPayloadProblem } from './payload-guard.js';

/** How long stopping waits for Slack to answer the close frame before the socket is left to itself. */
const STOP_WAIT_MS = 2_000;

/** The `/readyz` error code while the socket is down. */
export const SOCKET_DOWN = 'slack_socket_down';

/** `apps.connections.open` errors that mean the app-level token or the app settings are wrong. */
const TOKEN_FIXES: Record<string, string> = {
  invalid_auth:
    'SLACK_APP_TOKEN is not valid: copy the app-level token (xapp-...) from Slack app > Basic Information > App-Level Tokens',
  not_authed: 'SLACK_APP_TOKEN is missing: set it from Slack app > Basic Information > App-Level Tokens',
  not_allowed_token_type:
    'SLACK_APP_TOKEN is not an app-level token: use the xapp-... token of Basic Information > App-Level Tokens',
  missing_scope: 'the app-level token lacks connections:write: generate one with that scope',
  token_revoked: 'the app-level token was revoked: generate a new one and set SLACK_APP_TOKEN',
  account_inactive: 'the app-level token belongs to a deactivated app or workspace',
};

/** What the operator should check after a failed `apps.connections.open` or WebSocket connection. */
function fixFor(error: unknown): string {
  if (error instanceof webApi.WebAPIPlatformError) {
    const fix = TOKEN_FIXES[error.data.error ?? ''];
    if (fix) return fix;
  }
  return 'check that SLACK_API_URL reaches Slack, that Socket Mode is on in the Slack app settings, and that outbound WebSocket (wss://) connections are allowed';
}

/**
 * Bolt's `SocketModeReceiver` (package `@slack/socket-mode`) with what the HTTP endpoint has around it:
 * every envelope's payload is checked against the shapes Slack sends (the same ones as on
 * `POST /slack/events`) before Bolt sees it, an envelope no listener acknowledged is acknowledged so
 * Slack does not send it again, and the connection is opened again whenever it closes, with back-off
 * after failures. `readiness` says whether the socket is up, for `/readyz`.
 *
 * Reconnection is done here rather than by the client's own: the client's leaves a failed
 * `apps.connections.open` during a reconnect as an unhandled rejection.
 */
export class SlackSocketReceiver implements Receiver {
  private readonly inner: SocketModeReceiver;
  /** Between failed connection attempts. */
  private readonly retry: Backoff;
  private readonly logger: Logger;
  private up = false;
  private stopped = true;
  private connecting = false;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private down = 'not connected yet';

  constructor(options: {
    appToken: string;
    apiUrl: string;
    logger: Logger;
    boltLogger: BoltLogger;
    timeoutMs: number;
    retry?: Backoff;
  }) {
    this.retry = options.retry ?? DEFAULT_BACKOFF;
    this.logger = options.logger;
    this.inner = new SocketModeReceiver({
      appToken: options.appToken,
      logger: options.boltLogger,
      autoReconnectEnabled: false,
      installerOptions: {
        clientOptions: {
          slackApiUrl: options.apiUrl,
          // One retry layer, this receiver's: a failed apps.connections.open is tried again with back-off.
          retryConfig: { retries: 0 },
          timeout: options.timeoutMs,
        },
      },
    });
    const { client } = this.inner;
    client.on('connected', () => this.connected());
    client.on('disconnected', () => this.closed());
    client.on('ws_message', (data: unknown) => this.notice(data));
  }

  /** Hands each envelope to the app through the payload check; called by Bolt's App constructor. */
  init(app: App): void {
    const gate = { processEvent: (event: ReceiverEvent) => this.process(app, event) };
    // SocketModeReceiver calls nothing on its app but processEvent.
    this.inner.init(gate as unknown as App);
  }

  /** Open the connection (in the background: `readiness` says when it is up) and keep it open until `stop`. */
  start(): Promise<void> {
    this.stopped = false;
    void this.connect();
    return Promise.resolve();
  }

  /** Close the connection and stop reconnecting. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    let wait: NodeJS.Timeout | undefined;
    await Promise.race([
      this.inner.client.disconnect(),
      new Promise<void>((resolve) => {
        wait = setTimeout(resolve, STOP_WAIT_MS);
      }),
    ]);
    clearTimeout(wait);
    this.up = false;
  }

  /** For `/readyz`: undefined while the socket is connected, else why it is not. */
  readonly readiness: ReadinessCheck = () =>
    this.up
      ? undefined
      : {
          code: SOCKET_DOWN,
          message: `the Slack Socket Mode connection is down (${this.down}); it is being opened again`,
        };

  private async connect(): Promise<void> {
    if (this.stopped || this.connecting) return;
    this.connecting = true;
    try {
      // Resolves at Slack's `hello`; rejects when apps.connections.open fails or the socket closes first.
      await this.inner.start();
    } catch (error) {
      this.failed(error);
    } finally {
      this.connecting = false;
    }
  }

  private connected(): void {
    if (this.stopped) {
      // A connection that was being opened when the bot stopped.
      void this.inner.client.disconnect();
      return;
    }
    this.up = true;
    this.failures = 0;
    // What /readyz says if this connection is lost without a `disconnect` message saying why.
    this.down = 'the connection closed';
    this.logger.info({ component: 'slack' }, 'slack: Socket Mode connected');
  }

  private closed(): void {
    this.up = false;
    if (this.stopped) return;
    // A close while connecting is a failed attempt: `connect` retries it with back-off.
    if (this.connecting) return;
    this.logger.warn({ component: 'slack' }, 'slack: Socket Mode connection closed; opening a new one');
    this.schedule(0);
  }

  private failed(error: unknown): void {
    this.failures += 1;
    const delayMs = backoffMs(this.retry.firstMs, this.failures - 1, this.retry.maxMs);
    // The client rejects with nothing when the socket closes before Slack's hello.
    const message =
      error instanceof Error
        ? error.message || error.name
        : error === undefined
          ? "the WebSocket closed before Slack's hello"
          : String(error);
    this.down = `connecting failed: ${message}`;
    this.logger.error(
      { component: 'slack', err: message, retryInMs: delayMs },
      `slack: Socket Mode could not connect, so no Slack command or click is received until it does: ${fixFor(error)}`,
    );
    this.schedule(delayMs);
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, delayMs);
    this.timer.unref();
  }

  /** Slack's `disconnect` message says why it closes the socket: `link_disabled` needs the operator. */
  private notice(data: unknown): void {
    if (typeof data !== 'string' || !data.includes('"disconnect"')) return;
    let reason = 'unknown';
    try {
      const message = JSON.parse(data) as { type?: unknown; reason?: unknown };
      if (message.type !== 'disconnect') return;
      reason = typeof message.reason === 'string' ? message.reason.slice(0, 100) : 'unknown';
    } catch {
      return;
    }
    this.down = `Slack asked to reconnect: ${reason}`;
    if (reason === 'link_disabled') {
      this.logger.error(
        { component: 'slack', reason },
        'slack: Slack closed the socket because Socket Mode is off for this app: turn it on (Slack app > Socket Mode), or unset SLACK_APP_TOKEN and receive on POST /slack/events',
      );
    } else {
      this.logger.info({ component: 'slack', reason }, 'slack: Slack asked for a new Socket Mode connection');
    }
  }

  private async process(app: App, event: ReceiverEvent): Promise<void> {
    let acked = false;
    const ack: AckFn<unknown> = async (response) => {
      acked = true;
      await event.ack(response);
    };
    const problem = socketPayloadProblem(event.body);
    if (problem) {
      this.logger.warn(
        { component: 'slack', problem },
        'slack: Socket Mode envelope refused, its payload is not shaped as Slack sends it',
      );
      await ack();
      return;
    }
    try {
      await app.processEvent({ ...event, ack });
    } finally {
      if (!acked) {
        const type = typeof event.body.type === 'string' ? event.body.type.slice(0, 50) : 'command';
        this.logger.warn({ component: 'slack', type }, 'slack: no listener answered a Socket Mode envelope');
        await ack();
      }
    }
  }
}
