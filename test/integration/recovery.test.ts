import { afterEach, describe, expect, it } from 'vitest';
import { DryRunExecutor } from '../../adapters/dry-run-executor.js';
import type { JobHandler, JobOptions, JobQueue } from '../../adapters/job-queue.js';
import { LocalQueue } from '../../adapters/local-queue.js';
import { createLogger } from '../../bot/logger.js';
import { Maintenance } from '../../bot/maintenance.js';
import { approveAction } from '../../core/approve-action.js';
import { StoreUnavailableError } from '../../core/errors.js';
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { EXPERT, ManualClock } from '../support/core-harness.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';

/** A queue (port fake) whose first `execute` job is lost, as when Redis drops right after an approval. */
class QueueLosingFirstExecute implements JobQueue {
  private lost = false;
  constructor(private readonly inner: JobQueue) {}
  async add(name: string, data: unknown, options?: JobOptions): Promise<void> {
    if (name === 'execute' && !this.lost) {
      this.lost = true;
      throw new StoreUnavailableError('Redis is not reachable (test)');
    }
    await this.inner.add(name, data, options);
  }
  has(name: string, id: string): Promise<boolean> {
    return this.inner.has(name, id);
  }
  every(name: string, everyMs: number, data?: unknown): Promise<void> {
    return this.inner.every(name, everyMs, data);
  }
  process(name: string, handler: JobHandler): void {
    this.inner.process(name, handler);
  }
  start(): Promise<void> {
    return this.inner.start();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

let bot: BotServer;
afterEach(async () => {
  await bot?.close();
});

describe('an approval whose execution job was lost', () => {
  it('is re-scheduled by maintenance and executed exactly once', async () => {
    const clock = new ManualClock(new Date());
    const executor = new DryRunExecutor();
    const queue = new QueueLosingFirstExecute(
      new LocalQueue({ logger: createLogger('silent'), backoffMs: 10 }),
    );
    bot = await startBot({ parts: { clock, executor, queue } });
    await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body: sampleIngestBody(shippedSample()) });

    const ref = { incidentId: '48213', actionId: 'act-1' };
    await expect(approveAction(bot.runtime.deps, ref, EXPERT)).rejects.toThrow(StoreUnavailableError);
    expect((await bot.runtime.store.getAction('48213', 'act-1'))?.state).toBe('approved');

    const maintenance = new Maintenance(bot.runtime, 60_000);
    expect(await maintenance.runOnce()).toBe(0);
    clock.advance(61_000);
    expect(await maintenance.runOnce()).toBe(1);
    await expect
      .poll(async () => (await bot.runtime.store.getAction('48213', 'act-1'))?.state)
      .toBe('succeeded');
    expect(executor.records.map((r) => r.actionId)).toEqual(['act-1']);

    clock.advance(61_000);
    expect(await maintenance.runOnce()).toBe(0);
    expect(await new Maintenance(bot.runtime).runOnce()).toBe(0);
  });
});
