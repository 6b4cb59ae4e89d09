import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { type Child, startChild } from './children.js';

/** A free TCP port on loopback (closed again before it is returned). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether `redis-server` can be run here. */
export function hasRedisServer(): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = spawn('redis-server', ['--version'], { stdio: 'ignore' });
    probe.once('error', () => resolve(false));
    probe.once('exit', (code) => resolve(code === 0));
  });
}

/** A private, non-persistent redis-server on a free loopback port, in its own process group. */
export async function startPrivateRedis(): Promise<{ url: string; child: Child }> {
  const port = await freePort();
  const child = startChild(
    'redis-server',
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { PATH: process.env.PATH },
  );
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.ping();
      client.disconnect();
      return { url, child };
    } catch {
      client.disconnect();
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await child.stop();
  throw new Error(`redis-server did not answer on ${url}:\n${child.tail()}`);
}

/**
 * Total commands the server has run (`INFO commandstats`, every `calls=`; commands run by Lua scripts
 * are counted there too). The INFO that reads it is counted in the next reading: `delta` removes it.
 */
export class CommandCounter {
  constructor(private readonly admin: Redis) {}

  async total(): Promise<number> {
    const info = await this.admin.info('commandstats');
    let calls = 0;
    for (const match of info.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)) calls += Number(match[1]);
    return calls;
  }

  /** Calls per command name (Lua-internal calls included, as `INFO commandstats` counts them). */
  async byName(): Promise<Map<string, number>> {
    const info = await this.admin.info('commandstats');
    const calls = new Map<string, number>();
    for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
      calls.set(match[1] as string, Number(match[2]));
    return calls;
  }

  /** The busiest commands between two `byName` readings, per `per` (e.g. per approval). */
  static topDelta(
    before: Map<string, number>,
    after: Map<string, number>,
    per: number,
    top = 12,
  ): Record<string, number> {
    const rows = [...after].map(([name, n]) => [name, (n - (before.get(name) ?? 0)) / per] as const);
    rows.sort((a, b) => b[1] - a[1]);
    return Object.fromEntries(rows.slice(0, top).map(([name, n]) => [name, Math.round(n * 10) / 10]));
  }

  /** Commands between two readings, without the INFO of the first one. */
  static delta(before: number, after: number): number {
    return after - before - 1;
  }
}
