import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalQueue } from '../../../adapters/local-queue.js';
import { loadConfig } from '../../../bot/config.js';
import { DELIVER_JOB } from '../../../bot/delivery.js';
import { createLogger } from '../../../bot/logger.js';
import { assembleRuntime, EXECUTE_JOB, type Runtime } from '../../../bot/runtime.js';
import { WEBHOOK_JOB } from '../../../bot/webhooks.js';

let runtime: Runtime | undefined;
afterEach(async () => {
  await runtime?.close();
  runtime = undefined;
});

/** A bot runtime on an in-process queue, with every log line kept as parsed JSON. */
function runtimeWithLog() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const logger = createLogger('info', sink);
  const queue = new LocalQueue({ logger, backoffMs: 1 });
  runtime = assembleRuntime(loadConfig({ LOG_LEVEL: 'info' }), logger, { queue });
  return { runtime, queue, lines };
}

describe('job data', () => {
  it('drops a job whose data does not fit, logging what did not fit but none of its values', async () => {
    const { queue, lines, runtime } = runtimeWithLog();
    await queue.start();

    await queue.add(EXECUTE_JOB, { incidentId: '48213' }, { id: 'bad-execute', attempts: 3 });
    await queue.add(
      WEBHOOK_JOB,
      { eventId: 'e-1', type: 'task.nonsense', url: 'https://itsm.example/hook', body: 'secret-body-value' },
      { id: 'bad-webhook', attempts: 3 },
    );
    await queue.add(DELIVER_JOB, 'not an object', { id: 'bad-deliver', attempts: 3 });
    await queue.idle();

    const dropped = lines.filter((l) => String(l.msg).startsWith('job dropped'));
    expect(dropped.map((l) => [l.job, l.problems])).toEqual([
      [EXECUTE_JOB, ['actionId: invalid_type']],
      [WEBHOOK_JOB, ['type: invalid_value', 'incidentId: invalid_type', 'queuedAt: invalid_type']],
      [DELIVER_JOB, ['(data): invalid_type']],
    ]);
    expect(JSON.stringify(lines)).not.toContain('secret-body-value');
    expect(JSON.stringify(lines)).not.toContain('itsm.example');
    // Dropped, not failed: no retry was asked for, and nothing was audited or stored.
    expect(lines.filter((l) => String(l.msg).includes('retrying'))).toEqual([]);
    expect(await runtime.store.listAudit()).toEqual([]);
  });

  it('runs a job whose data fits', async () => {
    const { queue, lines } = runtimeWithLog();
    await queue.start();

    await queue.add(EXECUTE_JOB, { incidentId: '48213', actionId: 'act-1' }, { id: 'good-execute' });
    await queue.idle();

    expect(lines.filter((l) => String(l.msg).startsWith('job dropped'))).toEqual([]);
    expect(lines.find((l) => l.msg === 'execute job finished')).toMatchObject({
      incidentId: '48213',
      actionId: 'act-1',
    });
  });
});
