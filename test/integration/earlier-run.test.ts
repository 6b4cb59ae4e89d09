import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../../adapters/redis-store.js';
import { EARLIER_RUN_FIELDS } from '../../core/earlier-run.js';
import type { ActionRecord } from '../../core/model.js';
import { retryAction } from '../../core/retry-action.js';
import { runMyself } from '../../core/run-myself.js';
import { ADMIN, coreHarness, EXPERT } from '../support/core-harness.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import { incidentRecord } from '../support/store-fixtures.js';

/**
 * Every field of an action record, each either part of one run (`run`: a new run must start without it)
 * or of the action itself (`kept`). Typed over every key of `ActionRecord`, so a field added to the record
 * does not type-check here until someone says which it is.
 */
const FIELDS: Record<keyof ActionRecord, 'run' | 'kept'> = {
  incidentId: 'kept',
  id: 'kept',
  type: 'kept',
  target: 'kept',
  reason: 'kept',
  state: 'kept',
  excludedBy: 'kept',
  decidedBy: 'kept',
  decidedByName: 'kept',
  decidedAt: 'kept',
  decidedAs: 'kept',
  createdAt: 'kept',
  updatedAt: 'kept',
  attempt: 'kept',
  handoverReason: 'kept',
  scanType: 'kept',
  doneBy: 'kept',
  doneByName: 'kept',
  doneAt: 'kept',
  skippedBy: 'kept',
  skippedByName: 'kept',
  skippedAt: 'kept',
  skipReason: 'kept',
  version: 'kept',
  progress: 'run',
  result: 'run',
  error: 'run',
  blockedReason: 'run',
  resolved: 'run',
  externalId: 'run',
  remoteItems: 'run',
  executingSince: 'run',
  submittedAt: 'run',
  remoteStatus: 'run',
  executionToken: 'run',
  leaseAt: 'run',
  unsent: 'run',
  dryRun: 'run',
};
const RUN_FIELDS = Object.entries(FIELDS)
  .filter(([, kind]) => kind === 'run')
  .map(([field]) => field);

/** Every field of an earlier run set, as a soft delete that went all the way to Defender leaves them. */
const EARLIER_RUN: Partial<ActionRecord> = {
  progress: 'Defender: Failed',
  result: 'half done',
  error: 'Defender answered: remediation failed',
  blockedReason: 'the user could not be read',
  resolved: { userId: 'user-1', deviceId: 'dev-1' },
  externalId: 'bulk-7',
  remoteItems: ['analyzed-1', 'analyzed-2'],
  executingSince: '2026-11-27T09:06:00.000Z',
  submittedAt: '2026-11-27T09:06:01.000Z',
  remoteStatus: 'Failed',
  executionToken: 'token-1',
  leaseAt: '2026-11-27T09:06:02.000Z',
  unsent: true,
  dryRun: true,
};

let redis: TestRedis;
let next = 0;
const stores: RedisStore[] = [];

beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
});
afterAll(async () => {
  for (const store of stores) await store.close();
  await redis?.cleanup();
});

async function harnessWith(action: Partial<ActionRecord>) {
  const store = new RedisStore({ url: redis.url }, `${redis.prefix}${++next}:`);
  stores.push(store);
  const h = coreHarness({ store });
  const record: ActionRecord = {
    incidentId: '48213',
    id: 'act-3',
    type: 'softDeleteEmails',
    target: { networkMessageId: 'nm-1', recipient: 'j.doe@contoso.com' },
    excludedBy: null,
    decidedBy: EXPERT.id,
    createdAt: '2026-11-27T09:05:00.000Z',
    updatedAt: '2026-11-27T09:06:03.000Z',
    version: 4,
    state: 'failed',
    ...EARLIER_RUN,
    ...action,
  };
  await store.upsertIncident(incidentRecord('48213'), [record], []);
  expect(await store.getAction('48213', 'act-3')).toMatchObject(EARLIER_RUN);
  return h;
}

describe('a new run of an action', () => {
  it('names every field of an earlier run in the one list the new runs clear', () => {
    expect([...EARLIER_RUN_FIELDS].sort()).toEqual([...RUN_FIELDS].sort());
    expect(Object.keys(EARLIER_RUN).sort()).toEqual([...RUN_FIELDS].sort());
  });

  it('keeps no field of the failed run when an expert retries it', async () => {
    const h = await harnessWith({ state: 'failed' });

    const decision = await retryAction(h.deps, { incidentId: '48213', actionId: 'act-3' }, EXPERT);

    expect(decision).toMatchObject({ ok: true, action: { state: 'approved', attempt: 2 } });
    const stored: Record<string, unknown> = { ...(await h.store.getAction('48213', 'act-3')) };
    const survivors = RUN_FIELDS.filter((field) => stored[field] !== undefined);
    expect(survivors).toEqual([]);
    expect(stored).toMatchObject({ target: { networkMessageId: 'nm-1' }, decidedBy: EXPERT.id });
  });

  it('keeps no field of the run handed to the customer when their admin runs it', async () => {
    const h = await harnessWith({ state: 'customerPending', handoverReason: 'remediation failed' });

    const decision = await runMyself(h.deps, { incidentId: '48213', actionId: 'act-3' }, ADMIN);

    expect(decision).toMatchObject({ ok: true, action: { state: 'approved', decidedAs: 'customer' } });
    const stored: Record<string, unknown> = { ...(await h.store.getAction('48213', 'act-3')) };
    const survivors = RUN_FIELDS.filter((field) => stored[field] !== undefined);
    expect(survivors).toEqual([]);
    expect(stored).toMatchObject({ handoverReason: 'remediation failed', decidedBy: ADMIN.id });
  });
});
