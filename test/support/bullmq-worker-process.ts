/**
 * A separate worker process for the job tests: it takes `hang` jobs and never finishes them (so the test
 * can kill it mid-job) and runs `work` jobs normally. Prints `ready`, then `started <n>` for each job.
 */
import { BullMqQueue } from '../../adapters/bullmq-queue.js';

const url = process.env.TEST_REDIS_URL ?? '';
const keyPrefix = process.env.TEST_KEY_PREFIX ?? '';
const queue = new BullMqQueue({
  url,
  keyPrefix,
  lockDurationMs: Number(process.env.TEST_LOCK_MS ?? 1_000),
  stalledIntervalMs: Number(process.env.TEST_STALLED_MS ?? 500),
  concurrency: 1,
});
queue.process('hang', async (data) => {
  process.stdout.write(`started ${(data as { n: number }).n}\n`);
  await new Promise(() => {});
});
await queue.start();
process.stdout.write('ready\n');
