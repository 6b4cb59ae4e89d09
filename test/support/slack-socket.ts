import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import nock from 'nock';
import { type WebSocket, WebSocketServer } from 'ws';
import { SLACK_API_ORIGIN } from './slack.js';

/** The app-level token the Socket Mode tests configure (SLACK_APP_TOKEN). */
export const SLACK_APP_TOKEN = 'xapp-1-A0MDRBOT-1234567890-0123456789abcdef';

/** The envelope types Slack sends over Socket Mode besides `hello` and `disconnect`. */
export type EnvelopeType = 'interactive' | 'slash_commands' | 'events_api';

/** An acknowledgement the bot sent over the socket: the envelope id and the optional response payload. */
export interface SocketAck {
  envelope_id: string;
  payload?: Record<string, unknown>;
}

/**
 * A fake Slack for Socket Mode on loopback: `apps.connections.open` (nock, on the Web API origin of the
 * tests, checking the app-level token) answers `ws://127.0.0.1:<port>/link/?ticket=…`, and a `ws` server
 * there speaks Slack's envelope protocol: `hello` on connection, envelopes with `envelope_id`,
 * `payload`, `type` and `accepts_response_payload`, acknowledgements by `envelope_id`, and `disconnect`.
 */
export class FakeSocketModeSlack {
  /** Every `apps.connections.open` call, with the Authorization header it carried. */
  readonly opens: { authorization: string | undefined }[] = [];
  /** Sockets the bot opened, oldest first. */
  readonly sockets: WebSocket[] = [];
  /** Every acknowledgement received, in order. */
  readonly acks: SocketAck[] = [];
  /** Messages received that were not acknowledgements (none expected). */
  readonly strays: string[] = [];
  private readonly waiting = new Map<string, (ack: SocketAck) => void>();
  private refusals: { left: number; error: string } = { left: 0, error: '' };
  private socketRefusals = 0;
  private helloGate: Promise<void> = Promise.resolve();
  private openHello: () => void = () => {};

  private constructor(private readonly server: WebSocketServer) {
    server.on('connection', (socket) => {
      this.sockets.push(socket);
      socket.on('message', (data) => this.received(String(data)));
      void this.helloGate.then(() => {
        const open = this.sockets.filter((s) => s.readyState === s.OPEN).length;
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(helloMessage(open)));
      });
    });
  }

  /** Listen on a loopback port and answer `apps.connections.open` with it. */
  static async start(): Promise<FakeSocketModeSlack> {
    let fake: FakeSocketModeSlack | undefined;
    const server = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      verifyClient: (_info, accept) => {
        if (fake && fake.socketRefusals > 0) {
          fake.socketRefusals -= 1;
          accept(false, 503, 'Service Unavailable');
        } else accept(true);
      },
    });
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    fake = new FakeSocketModeSlack(server);
    const { port } = server.address() as AddressInfo;
    nock(SLACK_API_ORIGIN)
      .persist()
      .post('/api/apps.connections.open')
      .reply(function () {
        fake.opens.push({ authorization: this.req.headers.authorization as string | undefined });
        if (fake.refusals.left > 0) {
          fake.refusals.left -= 1;
          return [200, { ok: false, error: fake.refusals.error }];
        }
        const ticket = randomUUID();
        return [200, { ok: true, url: `ws://127.0.0.1:${port}/link/?ticket=${ticket}&app_id=A0MDRBOT` }];
      });
    return fake as FakeSocketModeSlack;
  }

  /** The socket opened last, while it is open. */
  get current(): WebSocket | undefined {
    const last = this.sockets.at(-1);
    return last?.readyState === last?.OPEN ? last : undefined;
  }

  /** The next `count` calls of `apps.connections.open` answer `{ ok: false, error }`, as Slack refuses a bad token. */
  refuseOpens(count: number, error: string): void {
    this.refusals = { left: count, error };
  }

  /** The next `count` WebSocket connections are refused at the upgrade (503), as a failing Slack edge would. */
  refuseSockets(count: number): void {
    this.socketRefusals = count;
  }

  /** Sockets opened from now on get no `hello` until `releaseHello`. */
  holdHello(): void {
    this.helloGate = new Promise((resolve) => {
      this.openHello = resolve;
    });
  }

  releaseHello(): void {
    this.openHello();
    this.helloGate = Promise.resolve();
  }

  /**
   * Send an envelope on the current socket. `onAck` runs the moment its acknowledgement arrives, before
   * anything else the test does; the promise resolves with the acknowledgement and what `onAck` returned.
   */
  async send<T = undefined>(
    type: EnvelopeType,
    payload: Record<string, unknown>,
    options: { acceptsResponsePayload?: boolean; onAck?: (ack: SocketAck) => Promise<T> } = {},
  ): Promise<{ ack: SocketAck; seen: T | undefined }> {
    const socket = this.current;
    if (!socket) throw new Error('the bot has no open socket');
    const envelopeId = randomUUID();
    const acked = new Promise<{ ack: SocketAck; seen: Promise<T | undefined> }>((resolve) => {
      this.waiting.set(envelopeId, (ack) =>
        resolve({ ack, seen: options.onAck ? options.onAck(ack) : Promise.resolve(undefined) }),
      );
    });
    socket.send(
      JSON.stringify({
        envelope_id: envelopeId,
        payload,
        type,
        accepts_response_payload: options.acceptsResponsePayload ?? type === 'slash_commands',
        ...(type === 'events_api' ? { retry_attempt: 0, retry_reason: '' } : {}),
      }),
    );
    const { ack, seen } = await acked;
    return { ack, seen: await seen };
  }

  /** Slack's `disconnect` message on the current socket. */
  disconnect(reason: 'refresh_requested' | 'link_disabled' | 'warning'): void {
    this.current?.send(
      JSON.stringify({ type: 'disconnect', reason, debug_info: { host: 'applink-fake-0001' } }),
    );
  }

  /** Close the current socket from Slack's side. */
  closeCurrent(code = 1001): void {
    this.current?.close(code, 'going away');
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.terminate();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private received(text: string): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      this.strays.push(text);
      return;
    }
    const ack = message as Partial<SocketAck>;
    if (typeof ack.envelope_id !== 'string') {
      this.strays.push(text);
      return;
    }
    const complete = { envelope_id: ack.envelope_id, ...(ack.payload ? { payload: ack.payload } : {}) };
    this.acks.push(complete);
    this.waiting.get(ack.envelope_id)?.(complete);
    this.waiting.delete(ack.envelope_id);
  }
}

/** Slack's first message on a new socket. */
function helloMessage(connections: number): Record<string, unknown> {
  return {
    type: 'hello',
    num_connections: connections,
    debug_info: { host: 'applink-fake-0001', build_number: 118, approximate_connection_time: 18_060 },
    connection_info: { app_id: 'A0MDRBOT' },
  };
}
