import { Redis } from 'ioredis';
import type { TestProject } from 'vitest/node';
import { PrivateRedisServer } from './redis-server.js';

/**
 * Runs once before all test files: finds the Redis the integration tests use and hands its URL to
 * them (`inject('redisUrl')`). REDIS_URL must answer; without it one private redis-server is started
 * for the whole run (and stopped after). Each file still keeps to its own key prefix (see redis.ts).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const url = process.env.REDIS_URL;
  if (url) {
    const probe = new Redis(url, { maxRetriesPerRequest: 0, connectTimeout: 2_000, lazyConnect: true });
    probe.on('error', () => {});
    try {
      await probe.connect();
      await probe.ping();
    } catch (error) {
      throw new Error(
        `REDIS_URL=${url} does not answer (${(error as Error).message}): start that Redis, or unset REDIS_URL to let the tests start a private redis-server`,
      );
    } finally {
      probe.disconnect();
    }
    project.provide('redisUrl', url);
    return async () => {};
  }
  const server = await PrivateRedisServer.start();
  project.provide('redisUrl', server.url);
  return () => server.stop();
}
