import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import { StoreUnavailableError } from '../core/errors.js';

/** What a connection is for: the store fails fast, BullMQ workers block and must never give up. */
export type RedisConnectionPurpose = 'store' | 'queue' | 'worker';

/** Options of `createRedisConnection`: ioredis options plus what the connection is for. */
export interface RedisConnectionOptions extends RedisOptions {
  purpose?: RedisConnectionPurpose;
}

/** Reconnect for ever (every 50 ms at first, then at most every 1 s) so the bot recovers without a restart. */
export function keepReconnecting(times: number): number {
  return Math.min(50 * times, 1_000);
}

/**
 * An ioredis connection with the bot's failure behaviour. `store` (default) and `queue` fail fast while
 * Redis is away (no offline queue, one retry, short connect timeout) and keep reconnecting in the
 * background. `worker` is what BullMQ workers need: `maxRetriesPerRequest: null` (blocking commands)
 * and an offline queue. Give BullMQ its own connections: never share one with the store.
 *
 * The store's connection pipelines automatically: the commands of every request issued in the same tick
 * of the event loop leave in one write (one system call) instead of one each, which under load is most
 * of the cost of talking to Redis. BullMQ's connections do not: a worker blocks its connection on purpose,
 * and BullMQ batches its own commands in Lua scripts.
 */
export function createRedisConnection(url: string, options: RedisConnectionOptions = {}): Redis {
  const { purpose = 'store', ...rest } = options;
  const common: RedisOptions = {
    connectTimeout: 1_000,
    retryStrategy: keepReconnecting,
    connectionName: `mdr-${purpose}`,
  };
  const byPurpose: RedisOptions =
    purpose === 'worker'
      ? { maxRetriesPerRequest: null, enableOfflineQueue: true }
      : {
          maxRetriesPerRequest: 1,
          enableOfflineQueue: false,
          commandTimeout: 1_500,
          ...(purpose === 'store' ? { enableAutoPipelining: true } : {}),
        };
  return new Redis(url, { ...common, ...byPurpose, ...rest });
}

/**
 * A Redis Cluster client with the store's failure behaviour, seeded from one node's URL (`redis://` or
 * `rediss://`, credentials included); the other nodes are discovered. For the store only: BullMQ takes
 * single-node connections from `createRedisConnection`.
 */
export function createRedisCluster(url: string, options: ClusterOptions = {}): Cluster {
  const seed = new URL(url);
  const tls = seed.protocol === 'rediss:' ? { tls: {} } : {};
  return new Cluster([{ host: seed.hostname, port: Number(seed.port || 6379) }], {
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    clusterRetryStrategy: keepReconnecting,
    ...options,
    redisOptions: {
      connectTimeout: 1_000,
      maxRetriesPerRequest: 1,
      commandTimeout: 1_500,
      ...(seed.username ? { username: decodeURIComponent(seed.username) } : {}),
      ...(seed.password ? { password: decodeURIComponent(seed.password) } : {}),
      ...tls,
      ...options.redisOptions,
    },
  });
}

/**
 * Resolves once `client` is ready to take commands. Fails at once while it waits between two reconnection
 * attempts (Redis is away), and after `timeoutMs` while a connection attempt is still under way.
 */
export function waitUntilReady(client: Redis | Cluster, timeoutMs = 500): Promise<void> {
  const status = client.status;
  if (status === 'ready') return Promise.resolve();
  if (status === 'end') return Promise.reject(new StoreUnavailableError('the Redis connection was closed'));
  // Between two reconnection attempts: the last one failed, so there is nothing to wait for.
  if (status === 'reconnecting') {
    return Promise.reject(new StoreUnavailableError('Redis is not reachable (reconnecting)'));
  }
  if (status === 'wait') void client.connect().catch(() => {});
  return new Promise((resolve, reject) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new StoreUnavailableError(`Redis is not reachable (connection ${client.status})`));
    }, timeoutMs);
    client.once('ready', onReady);
  });
}

/** Server replies that mean "not available right now", not "your command is wrong". */
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY|NOREPLICAS|MOVED|ASK)\b/;

/** A Redis failure as the ports report it: unreachable is StoreUnavailableError, a refused command is not. */
export function asStoreUnavailable(error: unknown): Error {
  if (error instanceof StoreUnavailableError) return error;
  const err = error instanceof Error ? error : new Error(String(error));
  if (err.name === 'ReplyError' && !UNAVAILABLE_REPLY.test(err.message)) return err;
  return new StoreUnavailableError(`Redis is not reachable: ${err.message}`, { cause: err });
}
