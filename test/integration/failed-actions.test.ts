import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../../adapters/redis-store.js';
import { approveAction } from '../../core/approve-action.js';
import { executeAction } from '../../core/execute-action.js';
import { handOverAction } from '../../core/hand-over-action.js';
import { ingestIncident } from '../../core/ingest-incident.js';
import type { ResponseExecutor } from '../../core/ports.js';
import { retryAction } from '../../core/retry-action.js';
import { coreHarness, EXPERT } from '../support/core-harness.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';

const ISOLATE = { incidentId: '48213', actionId: 'act-1' };
const OTHER_EXPERT = { id: 'teams:expert-aad', platform: 'teams' } as const;

let redis: TestRedis;
beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
});
afterAll(async () => {
  await redis.cleanup();
});

/** An executor that fails every request it is given. */
const failing: ResponseExecutor = {
  dryRun: false,
  submit: async () => ({ kind: 'finished', outcome: { ok: false, reason: 'Defender answered 400' } }),
  check: async () => [],
};

/** The sample isolation, failed, on a Redis store of its own. */
async function failedOnRedis(name: string) {
  const store = new RedisStore({ url: redis.url }, `${redis.prefix}${name}:`);
  const h = coreHarness({ store, executor: failing });
  await ingestIncident(h.deps, sampleIngestBody(shippedSample()), { id: 'api:ingest', platform: 'api' });
  await approveAction(h.deps, ISOLATE, EXPERT);
  expect(await executeAction(h.deps, ISOLATE)).toMatchObject({ action: { state: 'failed' } });
  h.jobs.jobs.splice(0);
  return { ...h, store };
}

describe('two experts acting on the same failure at once (Redis store)', () => {
  it('lets one retry win: one approval, one execution job, the other refused and audited', async () => {
    const h = await failedOnRedis('retry');
    try {
      const decisions = await Promise.all([
        retryAction(h.deps, ISOLATE, EXPERT),
        retryAction(h.deps, ISOLATE, OTHER_EXPERT),
      ]);
      expect(decisions.filter((d) => d.ok)).toHaveLength(1);
      expect(decisions.filter((d) => !d.ok)).toMatchObject([{ code: 'already_handled' }]);
      expect(h.jobs.jobs.filter((j) => j.kind === 'execute')).toHaveLength(1);
      const retries = (await h.store.listAudit('48213')).filter((e) => e.event === 'retry');
      expect(retries.map((e) => e.outcome).sort()).toEqual(['ok', 'refused']);
      expect(await h.store.listActionsIn('approved')).toMatchObject([{ id: 'act-1', attempt: 2 }]);
    } finally {
      await h.store.close();
    }
  });

  it('lets one of a retry and a handover win, and the task index follows the winner', async () => {
    const h = await failedOnRedis('both');
    try {
      const [retried, handed] = await Promise.all([
        retryAction(h.deps, ISOLATE, EXPERT),
        handOverAction(h.deps, ISOLATE, OTHER_EXPERT),
      ]);
      expect([retried.ok, handed.ok].filter(Boolean)).toHaveLength(1);
      const action = await h.store.getAction('48213', 'act-1');
      expect(action?.state).toBe(retried.ok ? 'approved' : 'customerPending');
      expect((await h.store.listTasks('pending')).map((t) => t.id)).toEqual(handed.ok ? ['48213:act-1'] : []);
    } finally {
      await h.store.close();
    }
  });
});
