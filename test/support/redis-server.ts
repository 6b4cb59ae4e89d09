import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

const INSTALL_HINT =
  'redis-server was not found on PATH: install it (Debian/Ubuntu: apt-get install redis-server) or set REDIS_URL';

/** Whether a Redis answers PING at `url` now (a refused or failing connection: false), without retrying. */
export async function answersPing(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  // Refused while the server starts: the caller tries again.
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** A free TCP port on the loopback interface. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject()));
    });
  });
}

/** Whether something accepts TCP connections on the loopback port. */
function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.connect(port, '127.0.0.1');
  });
}

/** A private, non-persistent redis-server on a fixed loopback port that tests can stop and start. */
export class PrivateRedisServer {
  private child: ChildProcess | null = null;

  private constructor(
    readonly port: number,
    private readonly extraArgs: string[],
  ) {}

  /** Starts a server on `port` (default: a free one). Fails with an install hint if the binary is missing. */
  static async start(port?: number, extraArgs: string[] = []): Promise<PrivateRedisServer> {
    const server = new PrivateRedisServer(port ?? (await freePort()), extraArgs);
    await server.start();
    return server;
  }

  /**
   * A one-node Redis Cluster owning all 16384 slots: enough for the server to refuse every command and
   * script whose keys span two slots (CROSSSLOT), as a real cluster does.
   */
  static async startCluster(): Promise<PrivateRedisServer> {
    const dir = await mkdtemp(join(tmpdir(), 'mdr-cluster-'));
    const server = await PrivateRedisServer.start(undefined, [
      '--cluster-enabled',
      'yes',
      '--dir',
      dir,
      '--cluster-config-file',
      'nodes.conf',
      '--cluster-announce-ip',
      '127.0.0.1',
      // A short node timeout also shortens the wait before a fresh cluster reports cluster_state:ok.
      '--cluster-node-timeout',
      '500',
    ]);
    const admin = new Redis(server.port, '127.0.0.1');
    try {
      await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
      const deadline = Date.now() + 10_000;
      while (!String(await admin.call('CLUSTER', 'INFO')).includes('cluster_state:ok')) {
        if (Date.now() > deadline) throw new Error('the one-node cluster did not become ready');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      admin.disconnect();
    }
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** (Re)starts the server on the same port; resolves once it accepts connections. */
  async start(): Promise<void> {
    if (this.child) return;
    const child = spawn(
      'redis-server',
      [
        '--save',
        '',
        '--appendonly',
        'no',
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        ...this.extraArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const failed = new Promise<never>((_, reject) => {
      child.once('error', (error: NodeJS.ErrnoException) => {
        reject(error.code === 'ENOENT' ? new Error(INSTALL_HINT) : error);
      });
      child.once('exit', (code) => {
        reject(new Error(`redis-server on port ${this.port} exited (${code}): ${output.slice(-500)}`));
      });
    });
    failed.catch(() => {});
    const deadline = Date.now() + 10_000;
    while (!(await Promise.race([accepting(this.port), failed]))) {
      if (Date.now() > deadline)
        throw new Error(`redis-server did not start on port ${this.port}: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    child.removeAllListeners('exit');
    child.removeAllListeners('error');
  }

  /** Freezes the server (SIGSTOP): connections stay open but nothing answers, like a network cut. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  /** Thaws a paused server. */
  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** Kills the server at once (no shutdown save), like a crash or a network cut. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    child.kill('SIGCONT');
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }
}
