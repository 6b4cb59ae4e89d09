import { createServer, type Server, Socket } from 'node:net';

/**
 * A TCP proxy in front of Redis that counts round trips: a round trip is a burst of bytes from a client
 * that follows a reply (or starts a connection). A pipeline of ten commands is one; ten awaited commands
 * are ten. Counts every connection through it, so point only the clients being measured at it.
 */
export class RoundTripProxy {
  roundTrips = 0;
  /** Raw bytes clients sent since the last reset (RESP), to see which commands made the trips. */
  sent = '';
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server) {}

  /** Listens on a free loopback port and forwards to `target` (`redis://host:port`). */
  static async start(target: string): Promise<RoundTripProxy> {
    const { hostname, port } = new URL(target);
    let proxy: RoundTripProxy | null = null;
    const server = createServer((client) => {
      const upstream = new Socket();
      upstream.connect(Number(port || 6379), hostname || '127.0.0.1');
      proxy?.track(client, upstream);
    });
    proxy = new RoundTripProxy(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  /** The URL clients use to go through the proxy (same database path as the target is up to them). */
  get url(): string {
    const address = this.server.address();
    if (typeof address !== 'object' || !address) throw new Error('proxy not listening');
    return `redis://127.0.0.1:${address.port}`;
  }

  reset(): void {
    this.roundTrips = 0;
    this.sent = '';
  }

  /** The command names sent since the last reset, in order. */
  commands(): string[] {
    const names: string[] = [];
    const parts = this.sent.split('\r\n');
    for (let i = 0; i < parts.length; i += 1) {
      if (parts[i]?.startsWith('*') && parts[i + 1]?.startsWith('$')) names.push(parts[i + 2] ?? '');
    }
    return names;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private track(client: Socket, upstream: Socket): void {
    this.sockets.add(client);
    this.sockets.add(upstream);
    let sending = false;
    client.on('data', (chunk: Buffer) => {
      if (!sending) this.roundTrips += 1;
      sending = true;
      this.sent += chunk.toString('latin1');
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      sending = false;
      client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  }
}
