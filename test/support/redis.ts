import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { deleteKeysWithPrefix } from './redis-keys.js';
import { PrivateRedisServer } from './redis-server.js';

export { deleteKeysWithPrefix } from './redis-keys.js';
export { PrivateRedisServer } from './redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The Redis every integration test uses: REDIS_URL, or the private server global-setup started. */
    redisUrl: string;
  }
}

/** One test file's corner of Redis: its own key prefix, and clients that are closed with it. */
export interface TestRedis {
  url: string;
  /** `test:<file>:<random>:`; every key the file writes starts with it. */
  prefix: string;
  /** A new plain ioredis client on the same server (closed by `cleanup`). */
  client(): Redis;
  /** Deletes the keys under this prefix (and nothing else), closes the clients and any private server. */
  cleanup(): Promise<void>;
}

/**
 * Redis for one test file: the server at REDIS_URL (or the private one global-setup started), or, when
 * neither is there (a file run outside vitest's setup), a private redis-server of its own.
 */
export async function useTestRedis(file: string): Promise<TestRedis> {
  let provided: string | undefined;
  try {
    provided = inject('redisUrl');
  } catch {
    provided = undefined;
  }
  const own = provided || process.env.REDIS_URL ? null : await PrivateRedisServer.start();
  const url = own?.url ?? provided ?? process.env.REDIS_URL ?? '';
  const name = basename(file).replace(/\.test\.ts$/, '');
  const prefix = `test:${name}:${randomBytes(4).toString('hex')}:`;
  const clients: Redis[] = [];
  return {
    url,
    prefix,
    client() {
      const client = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: false });
      clients.push(client);
      return client;
    },
    async cleanup() {
      const admin = new Redis(url, { maxRetriesPerRequest: 1 });
      try {
        await deleteKeysWithPrefix(admin, prefix);
      } finally {
        admin.disconnect();
        for (const client of clients) client.disconnect();
        await own?.stop();
      }
    },
  };
}
