import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HttpRequestError, headerOf, request } from '../../../adapters/http-client.js';
import { runModuleScript } from '../../support/bot-process.js';
import { loopbackTls } from '../../support/loopback-tls.js';

const CLIENT = fileURLToPath(new URL('../../../adapters/http-client.ts', import.meta.url));

interface Loopback {
  url: string;
  /** Connections the server accepted so far. */
  connections: number;
  /** Requests the server received, with their body. */
  received: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[];
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function listen(
  server: Server,
  handle: (req: IncomingMessage, res: ServerResponse) => void,
  scheme = 'http',
): Promise<Loopback> {
  const loopback: Loopback = { url: '', connections: 0, received: [] };
  server.on('connection', (_socket: Socket) => loopback.connections++);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      loopback.received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handle(req, res);
    });
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  loopback.url = `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return loopback;
}

const loopbackServer = (handle: (req: IncomingMessage, res: ServerResponse) => void) =>
  listen(createServer(), handle);

describe('request over the shared keep-alive client', () => {
  it('sends the method, headers and body and returns the status, headers and text of the answer', async () => {
    const server = await loopbackServer((_req, res) => {
      res.writeHead(201, { 'content-type': 'application/json', 'retry-after': '7' });
      res.end('{"id":"a-1"}');
    });

    const answer = await request('POST', `${server.url}/v3/conversations/c%3A1/activities`, {
      headers: { authorization: 'Bearer t', 'content-type': 'application/json; charset=utf-8' },
      body: '{"text":"é"}',
      timeoutMs: 5_000,
    });

    expect(answer).toMatchObject({ status: 201, text: '{"id":"a-1"}' });
    expect(headerOf(answer.headers, 'Retry-After')).toBe('7');
    expect(server.received).toEqual([
      expect.objectContaining({
        method: 'POST',
        url: '/v3/conversations/c%3A1/activities',
        body: '{"text":"é"}',
        headers: expect.objectContaining({
          authorization: 'Bearer t',
          'content-type': 'application/json; charset=utf-8',
          'content-length': String(Buffer.byteLength('{"text":"é"}')),
          connection: 'keep-alive',
        }),
      }),
    ]);
  });

  it('reuses one socket for calls one after the other', async () => {
    const server = await loopbackServer((_req, res) => res.end('ok'));

    for (let i = 0; i < 5; i++) {
      const answer = await request('GET', `${server.url}/n/${i}`, { timeoutMs: 5_000 });
      expect(answer.text).toBe('ok');
    }

    expect(server.received).toHaveLength(5);
    expect(server.connections).toBe(1);
  });

  it('returns a redirect as it is, without following it', async () => {
    const server = await loopbackServer((_req, res) => {
      res.writeHead(302, { location: '/elsewhere' });
      res.end();
    });

    const answer = await request('GET', `${server.url}/start`, { timeoutMs: 5_000 });

    expect(answer.status).toBe(302);
    expect(server.received.map((r) => r.url)).toEqual(['/start']);
  });

  it('gives up a call that gets no answer within its bound, as a TimeoutError', async () => {
    const server = await loopbackServer(() => {
      // never answers
    });

    const failure = await request('GET', `${server.url}/slow`, { timeoutMs: 200 }).catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(HttpRequestError);
    expect(failure).toMatchObject({ name: 'TimeoutError', code: 'ETIMEDOUT' });
  });

  it('gives up a call whose answer stops half-way, within its bound', async () => {
    const server = await loopbackServer((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
    });

    const failure = await request('GET', `${server.url}/half`, { timeoutMs: 200 }).catch((e: unknown) => e);

    expect(failure).toMatchObject({ name: 'TimeoutError', code: 'ETIMEDOUT' });
  });

  it('ends a call when its signal aborts, as an AbortError', async () => {
    const server = await loopbackServer(() => {
      // never answers
    });
    const controller = new AbortController();

    const pending = request('GET', `${server.url}/wait`, { timeoutMs: 30_000, signal: controller.signal });
    await vi.waitFor(() => expect(server.received).toHaveLength(1));
    controller.abort();

    await expect(pending).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
  });

  it('does not send a call whose signal has already aborted', async () => {
    const server = await loopbackServer((_req, res) => res.end('ok'));

    await expect(
      request('GET', `${server.url}/`, { timeoutMs: 5_000, signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({ name: 'AbortError' });
    expect(server.received).toEqual([]);
  });

  it('reports a refused connection with its socket error code', async () => {
    const server = await loopbackServer((_req, res) => res.end('ok'));
    const url = server.url;
    const only = servers.pop() as Server;
    only.closeAllConnections();
    await new Promise((resolve) => only.close(resolve));

    await expect(request('GET', `${url}/`, { timeoutMs: 5_000 })).rejects.toMatchObject({
      name: 'HttpRequestError',
      code: 'ECONNREFUSED',
    });
  });

  it('refuses to call anything but http and https', async () => {
    await expect(request('GET', 'file:///etc/passwd', { timeoutMs: 1_000 })).rejects.toThrow(
      /only http and https/,
    );
  });
});

describe('https', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  const selfSignedServer = async () => {
    dir = mkdtempSync(join(tmpdir(), 'http-client-'));
    const tls = loopbackTls(dir);
    const server = await listen(
      createHttpsServer({ key: tls.key, cert: tls.cert }),
      (_req, res) => res.end('trusted'),
      'https',
    );
    return { server, tls };
  };

  it('refuses a server whose certificate the process does not trust', async () => {
    const { server } = await selfSignedServer();

    const failure = await request('GET', `${server.url}/`, { timeoutMs: 5_000 }).catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(HttpRequestError);
    expect((failure as HttpRequestError).code).toMatch(/CERT|SIGNED/);
    expect(server.received).toEqual([]);
  });

  it('trusts the certificates of NODE_EXTRA_CA_CERTS, as node does', async () => {
    const { server, tls } = await selfSignedServer();
    const script = `import { request } from ${JSON.stringify(CLIENT)};
const answer = await request('GET', process.env.TARGET_URL, { timeoutMs: 10_000 });
process.stdout.write(answer.status + ' ' + answer.text);`;
    const { code, output } = await runModuleScript(script, {
      NODE_EXTRA_CA_CERTS: tls.certFile,
      TARGET_URL: `${server.url}/ca`,
    });
    expect(output).toBe('200 trusted');
    expect(code).toBe(0);
  });
});
