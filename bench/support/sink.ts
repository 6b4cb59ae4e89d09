import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

/** Two loopback servers (HTTP and HTTPS) that read each request and answer 200 `{"ok":true,"id":"1"}`. */
export interface Sink {
  httpUrl: string;
  httpsUrl: string;
  requests(): number;
  close(): Promise<void>;
}

/**
 * The far end of the calls floor (bench/floor-calls.ts): as cheap as an HTTP server gets, in the bench
 * process, so that the floor process spends its CPU on its own side of each call only.
 */
export async function startSink(tls: { key: string; cert: string }): Promise<Sink> {
  let count = 0;
  const answer = (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      count++;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 20 });
      res.end('{"ok":true,"id":"1"}');
    });
  };
  const servers: Server[] = [createServer(answer), createHttpsServer(tls, answer)];
  const urls: string[] = [];
  for (const [i, server] of servers.entries()) {
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    urls.push(`${i === 0 ? 'http' : 'https'}://127.0.0.1:${(server.address() as AddressInfo).port}`);
  }
  return {
    httpUrl: urls[0] ?? '',
    httpsUrl: urls[1] ?? '',
    requests: () => count,
    close: async () => {
      for (const server of servers) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
  };
}
