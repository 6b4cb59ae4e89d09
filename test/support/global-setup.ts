import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { TestProject } from 'vitest/node';
import { leftoverProcesses } from './leftover-processes.js';
import { PrivateRedisServer } from './redis-server.js';

/** How long the teardown lets children that were just told to stop take to exit. */
const EXIT_GRACE_MS = 5_000;

/**
 * Runs once before all test files: finds the Redis the integration tests use and hands its URL to
 * them (`inject('redisUrl')`). REDIS_URL must answer; without it one private redis-server is started
 * for the whole run (and stopped after). Each file still keeps to its own key prefix (see redis.ts).
 *
 * It also names the run (MDR_TEST_RUN_ID, inherited by the test workers): every process a test starts
 * carries it as MDR_TEST_CHILD_OF (see bot-process.ts), and the teardown fails the run when one of
 * them, or any other process below vitest, is still alive after the last test.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const runId = randomBytes(8).toString('hex');
  process.env.MDR_TEST_RUN_ID = runId;
  const stopRedis = await useRedis(project);
  return async () => {
    await stopRedis();
    await checkNoChildOutlives(runId);
  };
}

async function useRedis(project: TestProject): Promise<() => Promise<void>> {
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

/** Fails loudly, after killing them, when processes started by the tests outlive the suite. */
async function checkNoChildOutlives(runId: string): Promise<void> {
  const deadline = Date.now() + EXIT_GRACE_MS;
  let left = leftoverProcesses(runId, process.pid);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(100); // children told to stop in the last afterAll may still be exiting
    left = leftoverProcesses(runId, process.pid);
  }
  if (left.length === 0) return;
  for (const { pid } of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  // vitest reports an error thrown here but keeps its exit status: fail the run (and CI) ourselves.
  process.exitCode = 1;
  const list = left.map((p) => `  pid ${p.pid} (parent ${p.ppid}): ${p.cmdline}`).join('\n');
  throw new Error(
    `${left.length} process(es) started by the tests outlived the suite (killed now):\n${list}\n` +
      'Start children detached and end their process group in afterAll/finally (test/support/bot-process.ts).',
  );
}
