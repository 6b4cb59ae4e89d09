import { Queue } from 'bullmq';
import nock from 'nock';
import { describe, expect, it } from 'vitest';
import { BullMqQueue } from '../../adapters/bullmq-queue.js';
import { DefenderExecutor } from '../../adapters/defender-executor.js';
import { DefenderPacer } from '../../adapters/defender-pacer.js';
import { DryRunExecutor } from '../../adapters/dry-run-executor.js';
import { LocalQueue } from '../../adapters/local-queue.js';
import { createRedisConnection } from '../../adapters/redis-connection.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { loadConfig } from '../../bot/config.js';
import { createLogger } from '../../bot/logger.js';
import { Maintenance } from '../../bot/maintenance.js';
import {
  assembleRuntime,
  EARLIER_FOLLOW_LANE,
  FOLLOW_JOB,
  JOB_LANES,
  jobIdOf,
  type Runtime,
} from '../../bot/runtime.js';
import { approveAction } from '../../core/approve-action.js';
import { StoreUnavailableError } from '../../core/errors.js';
import { executeAction } from '../../core/execute-action.js';
import { followActions } from '../../core/follow-actions.js';
import type { ActionStore } from '../../core/ports.js';
import { recoverApprovals } from '../../core/recover-approvals.js';
import { type BotServer, startBot } from '../support/bot-server.js';
import { coreHarness, EXPERT, ManualClock } from '../support/core-harness.js';
import { actionRecord, incidentRecord } from '../support/store-fixtures.js';
import {
  fakeTime,
  fixture,
  GRAPH_ORIGIN,
  GRAPH_TOKEN,
  GRAPH_URL,
  MDE_ORIGIN,
  MDE_TOKEN,
  MDE_URL,
  testCredential,
  useRedisAndDefender,
} from './defender-helpers.js';

const DEVICE = 'dev-1';
const POST_ISOLATE = `/prefix/api/machines/${DEVICE}/isolate`;
const LIST = '/prefix/api/machineactions';

const life = useRedisAndDefender(import.meta.filename);
const { closers } = life;
let next = 0;

const prefix = () => `${life.redis().prefix}${++next}:`;

function redisStore(): RedisStore {
  const store = new RedisStore({ url: life.redis().url }, prefix());
  closers.push(() => store.close());
  return store;
}

/** Defender, answering only requests that carry the MDE token. */
const mde = () => nock(MDE_ORIGIN, { reqheaders: { authorization: `Bearer ${MDE_TOKEN}` } });

/** A machine action as Defender returns it, for the incident and device of these tests. */
const machineAction = (id: string, incidentId: string, status = 'Pending', actionId = 'act-1') =>
  fixture('machine-action', {
    id,
    status,
    machineId: DEVICE,
    computerDnsName: 'ws-042.contoso.com',
    requestorComment: `MDR: isolate per incident ${incidentId}, action ${actionId} (approved by slack:U0EXPERT1)`,
  });

/** The lookup of every machine action of a type on the device, whatever its status. */
const OWN_LOOKUP = `machineId eq '${DEVICE}' and type eq 'Isolate'`;

/**
 * Defender keeping the machine actions of DEVICE: POST isolate creates one (`Pending`, its comment as
 * `requestorComment`, created at the clock's time) and the lookup by device and type lists them all.
 * `actions` may be changed to end them or to add others'.
 */
function defenderKeeping(clock: ManualClock) {
  const actions: Record<string, unknown>[] = [];
  const posts: string[] = [];
  const lookups: string[] = [];
  mde()
    .persist()
    .post(POST_ISOLATE)
    .reply((_uri, body) => {
      const id = `ma-${posts.length}`;
      posts.push(id);
      const created = fixture('machine-action', {
        id,
        machineId: DEVICE,
        computerDnsName: 'ws-042.contoso.com',
        requestorComment: (body as { Comment?: string }).Comment ?? '',
        creationDateTimeUtc: clock.now().toISOString(),
        lastUpdateDateTimeUtc: clock.now().toISOString(),
      });
      actions.push(created);
      return [201, created];
    })
    .get(LIST)
    .query((q) => {
      // The batched status query of submitted actions is another interceptor's.
      if (String(q.$filter).startsWith('id in (')) return false;
      lookups.push(String(q.$filter));
      return q.$filter === OWN_LOOKUP;
    })
    .reply(() => [200, { value: actions }]);
  return { actions, posts, lookups };
}

/**
 * Approve `ref` and start it on a run that is killed right after Defender's 201, before the remote id
 * is recorded (the store goes away under it); the action stays `executing` under that run's token.
 */
async function killedAfterSending(
  h: ReturnType<typeof onRedis>,
  ref: { incidentId: string; actionId: string },
) {
  await approveAction(h.deps, ref, EXPERT);
  h.jobs.jobs.length = 0;
  let crashed = false;
  const crashing = new Proxy(h.store, {
    get(target, name, receiver) {
      if (name === 'compareAndSet') {
        return (...args: Parameters<ActionStore['compareAndSet']>) => {
          if (args[0].externalId && !crashed) {
            crashed = true;
            return Promise.reject(new StoreUnavailableError('Redis is not reachable (test)'));
          }
          return target.compareAndSet(...args);
        };
      }
      const value = Reflect.get(target, name, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  await expect(executeAction({ ...h.deps, store: crashing }, ref, { token: 'run-a' })).rejects.toThrow(
    StoreUnavailableError,
  );
  expect(await h.store.getAction(ref.incidentId, ref.actionId)).toMatchObject({
    state: 'executing',
    executionToken: 'run-a',
  });
}

/** Defender answering POST isolate with a new machine action each time; counts the POSTs. */
function acceptIsolations(incidentId: (n: number) => string = () => '1') {
  const posts: string[] = [];
  mde()
    .persist()
    .post(POST_ISOLATE)
    .reply(() => {
      const id = `ma-${posts.length}`;
      posts.push(id);
      return [201, machineAction(id, incidentId(posts.length - 1))];
    });
  return posts;
}

/** Defender answering the batched status query: every asked id with `status`; records the ids asked. */
function answerStatus(status: string | (() => string)) {
  const asked: string[][] = [];
  mde()
    .persist()
    .get(LIST)
    .query((q) => String(q.$filter).startsWith('id in ('))
    .reply((uri) => {
      const filter = new URL(uri, MDE_ORIGIN).searchParams.get('$filter') ?? '';
      const ids = [...filter.matchAll(/'([^']+)'/g)].map((m) => m[1] as string);
      asked.push(ids);
      const now = typeof status === 'function' ? status() : status;
      return [200, { value: ids.map((id) => machineAction(id, '1', now)) }];
    });
  return asked;
}

/** An incident whose device no rule excludes, with isolate actions `ids`. */
async function seed(store: ActionStore, incidentId: string, ids: string[] = ['act-1']) {
  const devices = [{ id: DEVICE, dnsName: 'ws-042.contoso.com', tags: [] }];
  await store.upsertIncident(
    incidentRecord(incidentId, { devices }),
    ids.map((id) => actionRecord(incidentId, id)),
    [],
  );
}

/** A replica's pacer of tenant contoso on the test's Redis, counting under `keyPrefix`. */
function pacerOn(keyPrefix: string, perMinute: number, perHour: number): DefenderPacer {
  return new DefenderPacer({
    perMinute,
    perHour,
    tenant: 'contoso',
    redis: life.redis().client(),
    keyPrefix,
  });
}

/** Incident 1 with isolate actions `ids`, each approved and submitted to Defender. */
async function submitAll(h: ReturnType<typeof onRedis>, ids: string[]) {
  await seed(h.store, '1', ids);
  for (const actionId of ids) {
    await approveAction(h.deps, { incidentId: '1', actionId }, EXPERT);
    await executeAction(h.deps, { incidentId: '1', actionId });
  }
}

/** The Defender executor on the nocked API, on the test's clock. */
function defender(clock: ManualClock, pacer?: DefenderPacer) {
  return new DefenderExecutor({
    credential: testCredential(),
    defenderApiUrl: MDE_URL,
    graphApiUrl: GRAPH_URL,
    sleep: fakeTime().sleep,
    now: () => clock.now().getTime(),
    ...(pacer ? { pacer } : {}),
  });
}

/** Core dependencies on Redis with the Defender executor. */
function onRedis(pacer?: DefenderPacer) {
  const h = coreHarness({ store: redisStore() });
  h.deps.executor = defender(h.clock, pacer);
  return h;
}

describe('exactly once', () => {
  it('sends one request when maintenance runs while the approval job is merely late', async () => {
    const logger = createLogger('silent');
    const config = loadConfig({ LOG_LEVEL: 'silent', DEFENDER_FOLLOW_SECONDS: '1' });
    const store = redisStore();
    const queue = new BullMqQueue({ url: life.redis().url, keyPrefix: prefix(), lanes: JOB_LANES, logger });
    const clock = new ManualClock(new Date());
    const runtime: Runtime = assembleRuntime(config, logger, {
      store,
      queue,
      clock,
      executor: defender(clock),
    });
    closers.push(() => queue.close());
    const posts = acceptIsolations();
    answerStatus('Succeeded');
    await seed(store, '1');
    const ref = { incidentId: '1', actionId: 'act-1' };

    expect(await approveAction(runtime.deps, ref, EXPERT)).toMatchObject({ ok: true });
    clock.advance(61_000);
    expect(await new Maintenance(runtime, 60_000).runOnce()).toBe(0);
    await queue.start();
    await runtime.startTimers();

    await expect
      .poll(async () => (await store.getAction('1', 'act-1'))?.state, { timeout: 15_000, interval: 100 })
      .toBe('succeeded');
    expect(posts).toEqual(['ma-0']);
    expect((await store.getAction('1', 'act-1'))?.result).toBe(
      'Defender: Isolate Succeeded on ws-042.contoso.com (action id ma-0)',
    );
  });

  it('sends nothing from a second run of the action while the first holds the token', async () => {
    const h = onRedis();
    let posts = 0;
    // Defender answers the first run's POST only once the second run has been tried.
    let answer: () => void = () => {};
    const answered = new Promise<void>((resolve) => {
      answer = resolve;
    });
    mde()
      .post(POST_ISOLATE)
      .reply(async () => {
        posts++;
        await answered;
        return [201, machineAction('ma-1', '1')];
      });
    await seed(h.store, '1');
    const ref = { incidentId: '1', actionId: 'act-1' };
    await approveAction(h.deps, ref, EXPERT);

    const first = executeAction(h.deps, ref, { token: 'run-a' });
    await expect.poll(async () => (await h.store.getAction('1', 'act-1'))?.executionToken).toBe('run-a');
    const second = await executeAction(h.deps, ref, { token: 'run-b' });
    answer();

    expect(second).toEqual({ status: 'skipped', reason: 'another run holds it' });
    expect(await first).toMatchObject({ status: 'done', action: { state: 'executing', externalId: 'ma-1' } });
    expect(await executeAction(h.deps, ref, { token: 'run-c' })).toEqual({
      status: 'skipped',
      reason: 'already submitted: followed by its remote id',
    });
    expect(posts).toBe(1);
  });

  it('adopts the action Defender created before a crash instead of sending it again', async () => {
    const h = onRedis();
    const defenderSide = defenderKeeping(h.clock);
    answerStatus('Succeeded');
    await seed(h.store, '1');
    const ref = { incidentId: '1', actionId: 'act-1' };

    await killedAfterSending(h, ref);
    expect(await recoverApprovals(h.deps, 60_000)).toBe(0);
    h.clock.advance(61_000);
    expect(await recoverApprovals(h.deps, 60_000)).toBe(1);
    const [job] = h.jobs.jobs;
    expect(job).toMatchObject({ kind: 'execute', incidentId: '1', actionId: 'act-1', rerun: true });
    const resumed = await executeAction(h.deps, ref, { token: 'run-b' });
    await followActions(h.deps);

    expect(resumed).toMatchObject({ status: 'done', action: { state: 'executing', externalId: 'ma-0' } });
    expect(defenderSide.posts).toEqual(['ma-0']);
    expect(defenderSide.lookups).toEqual([OWN_LOOKUP]);
    expect(await h.store.getAction('1', 'act-1')).toMatchObject({ state: 'succeeded' });
    expect((await h.store.listAudit('1')).map((e) => e.detail)).toContain(
      'taken over from a run that stopped (stale lease)',
    );
  });

  it.each([
    { status: 'Succeeded', state: 'succeeded', field: 'result' },
    { status: 'Failed', state: 'failed', field: 'error' },
  ])(
    'adopts its own action that already ended $status on a takeover, and ends with it at once',
    async ({ status, state, field }) => {
      const h = onRedis();
      const defenderSide = defenderKeeping(h.clock);
      await seed(h.store, '1');
      const ref = { incidentId: '1', actionId: 'act-1' };
      await killedAfterSending(h, ref);
      const [sent] = defenderSide.actions;
      expect(sent?.requestorComment).toBe(
        'MDR: isolate per incident 1, action act-1 (approved by slack:U0EXPERT1)',
      );
      // Defender carries it out while no run follows it.
      h.clock.advance(61_000);
      Object.assign(sent ?? {}, { status, lastUpdateDateTimeUtc: h.clock.now().toISOString() });

      const resumed = await executeAction(h.deps, ref, { token: 'run-b' });

      expect(defenderSide.posts).toEqual(['ma-0']);
      expect(resumed).toMatchObject({ status: 'done', action: { state, externalId: 'ma-0' } });
      const stored = await h.store.getAction('1', 'act-1');
      expect(stored).toMatchObject({ state, externalId: 'ma-0' });
      expect(stored?.[field as 'result' | 'error']).toContain(`Isolate ${status}`);
    },
  );

  it('does not adopt the action of another action id on the same device and sends its own once', async () => {
    const h = onRedis();
    const defenderSide = defenderKeeping(h.clock);
    await seed(h.store, '1', ['act-1', 'act-10']);
    const ref = { incidentId: '1', actionId: 'act-1' };
    await approveAction(h.deps, ref, EXPERT);
    // The run that started act-1 is killed before it sends anything.
    const killed = {
      dryRun: false,
      submit: () => Promise.reject(new StoreUnavailableError('replica killed (test)')),
      check: () => Promise.resolve([]),
    };
    await expect(executeAction({ ...h.deps, executor: killed }, ref, { token: 'run-a' })).rejects.toThrow(
      StoreUnavailableError,
    );
    // act-10 was isolated on the same device meanwhile and has ended.
    h.clock.advance(30_000);
    defenderSide.actions.push(
      fixture('machine-action', {
        id: 'ma-act-10',
        status: 'Succeeded',
        machineId: DEVICE,
        requestorComment: 'MDR: isolate per incident 1, action act-10 (approved by slack:U0EXPERT1)',
        creationDateTimeUtc: h.clock.now().toISOString(),
      }),
    );
    h.clock.advance(31_000);

    const resumed = await executeAction(h.deps, ref, { token: 'run-b' });

    expect(defenderSide.lookups).toEqual([OWN_LOOKUP]);
    expect(defenderSide.posts).toEqual(['ma-0']);
    expect(resumed).toMatchObject({ status: 'done', action: { state: 'executing', externalId: 'ma-0' } });
    expect(defenderSide.actions[1]?.requestorComment).toBe(
      'MDR: isolate per incident 1, action act-1 (approved by slack:U0EXPERT1)',
    );
  });

  it('gives actions whose ids run together jobs of their own', async () => {
    const executor = new DryRunExecutor();
    const bot: BotServer = await startBot({ parts: { executor } });
    closers.push(() => bot.close());
    const store = bot.runtime.store;
    await seed(store, '2025-1', ['act-1']);
    await seed(store, '2025', ['1-act-1']);
    const a = { kind: 'execute', incidentId: '2025-1', actionId: 'act-1' } as const;
    const b = { kind: 'execute', incidentId: '2025', actionId: '1-act-1' } as const;

    expect(jobIdOf(a)).not.toBe(jobIdOf(b));
    expect(jobIdOf({ kind: 'remind', incidentId: '2025-1', actionId: 'act-1', dueAt: 'x' })).not.toBe(
      jobIdOf({ kind: 'remind', incidentId: '2025', actionId: '1-act-1', dueAt: 'x' }),
    );
    for (const { incidentId, actionId } of [a, b]) {
      expect(await approveAction(bot.runtime.deps, { incidentId, actionId }, EXPERT)).toMatchObject({
        ok: true,
      });
    }

    await expect
      .poll(async () => [
        (await store.getAction('2025-1', 'act-1'))?.state,
        (await store.getAction('2025', '1-act-1'))?.state,
      ])
      .toEqual(['succeeded', 'succeeded']);
    expect(executor.records.map((r) => `${r.incidentId}/${r.actionId}`).sort()).toEqual([
      '2025-1/act-1',
      '2025/1-act-1',
    ]);
  });

  it('finds an approved action older than the 200 newest incidents', async () => {
    const h = coreHarness({ store: redisStore() });
    await h.store.upsertIncident(
      incidentRecord('old', { receivedAt: '2020-01-01T00:00:00.000Z', devices: [] }),
      [actionRecord('old', 'act-1')],
      [],
    );
    await approveAction(h.deps, { incidentId: 'old', actionId: 'act-1' }, EXPERT);
    h.jobs.jobs.length = 0;
    for (let i = 0; i < 200; i++) {
      await h.store.upsertIncident(incidentRecord(`new-${i}`), [actionRecord(`new-${i}`, 'act-1')], []);
    }
    expect((await h.store.listIncidents(200)).map((i) => i.id)).not.toContain('old');
    h.clock.advance(61_000);

    expect(await recoverApprovals(h.deps, 60_000)).toBe(1);
    expect(h.jobs.jobs).toEqual([{ kind: 'execute', incidentId: 'old', actionId: 'act-1', rerun: true }]);
    // The job is there now: the next sweep leaves it to run.
    expect(await recoverApprovals(h.deps, 60_000)).toBe(0);
  });
});

describe('following submitted actions', () => {
  it('ends 25 actions in flight with one batched GET', async () => {
    const h = onRedis();
    const ids = Array.from({ length: 25 }, (_, i) => `act-${i}`);
    const posts = acceptIsolations();
    await submitAll(h, ids);
    expect((await h.store.listActionsIn('submitted')).length).toBe(25);
    const asked = answerStatus('Succeeded');

    const report = await followActions(h.deps);

    expect(report).toMatchObject({ inFlight: 25, checked: 25, ended: 25 });
    expect(asked).toHaveLength(1);
    expect(asked[0]?.sort()).toEqual([...posts].sort());
    const states = (await h.store.getIncident('1'))?.actions.map((a) => a.state);
    expect(states).toEqual(ids.map(() => 'succeeded'));
    expect(await h.store.listActionsIn('submitted')).toEqual([]);
  });

  it('shows a status change on the card, then the end, and skips the round when Defender answers 429', async () => {
    const h = onRedis();
    acceptIsolations();
    await seed(h.store, '1');
    await approveAction(h.deps, { incidentId: '1', actionId: 'act-1' }, EXPERT);
    await executeAction(h.deps, { incidentId: '1', actionId: 'act-1' });
    mde()
      .get(LIST)
      .query(true)
      .reply(
        429,
        { error: { code: 'TooManyRequests', message: 'Rate limit is exceeded.' } },
        { 'Retry-After': '10' },
      );
    const skipped = await followActions(h.deps);
    const notAsked = await followActions(h.deps);
    let status = 'InProgress';
    answerStatus(() => status);
    // Rounds 4 and 6 after the submission: both check it (past the first rounds, every other round).
    h.clock.advance(20_000);
    const changesBefore = h.notifier.changed.length;

    const shown = await followActions(h.deps);
    const changesAfterProgress = h.notifier.changed.length;
    status = 'Succeeded';
    h.clock.advance(10_000);
    const ended = await followActions(h.deps);

    expect(skipped).toMatchObject({ checked: 1, changed: 0, ended: 0 });
    expect(notAsked).toMatchObject({ checked: 1, changed: 0, ended: 0 });
    expect(shown).toMatchObject({ changed: 1, ended: 0 });
    // Defender's new status is shown on the card at once, and audited.
    expect(changesAfterProgress).toBe(changesBefore + 1);
    expect(h.notifier.changed.at(-1)).toBe('1');
    const audit = await h.store.listAudit('1');
    expect(audit.some((e) => e.event === 'progress' && e.detail === 'Defender: InProgress')).toBe(true);
    expect(ended).toMatchObject({ changed: 0, ended: 1 });
    expect(h.notifier.changed.slice(changesBefore)).toEqual(['1', '1']);
    expect(await h.store.getAction('1', 'act-1')).toMatchObject({ state: 'succeeded' });
  });

  it('reads only the window of in-flight actions it asks about, and takes the next window next round', async () => {
    const h = onRedis();
    const ids = Array.from({ length: 5 }, (_, i) => `act-${i}`);
    acceptIsolations();
    await submitAll(h, ids);
    const asked = answerStatus('InProgress');
    const firstRound = await followActions(h.deps, { perRound: 2, roundMs: 5_000 });
    h.clock.advance(5_000);
    const secondRound = await followActions(h.deps, { perRound: 2, roundMs: 5_000 });

    expect(firstRound).toMatchObject({ inFlight: 5, checked: 2 });
    expect(secondRound).toMatchObject({ inFlight: 5, checked: 2 });
    expect(asked).toHaveLength(2);
    expect(asked[0]).toHaveLength(2);
    // The next window: other actions than the first round's.
    expect(asked[1]?.some((id) => asked[0]?.includes(id))).toBe(false);
    const inProgress = (await h.store.getIncident('1'))?.actions.filter(
      (a) => a.remoteStatus === 'InProgress',
    );
    expect(inProgress).toHaveLength(4);
  });

  it('asks about an action every round at first, then less and less often, and still shows its end', async () => {
    const h = onRedis();
    acceptIsolations();
    await seed(h.store, '1');
    await approveAction(h.deps, { incidentId: '1', actionId: 'act-1' }, EXPERT);
    await executeAction(h.deps, { incidentId: '1', actionId: 'act-1' });
    let status = 'InProgress';
    const asked = answerStatus(() => status);
    const askedIn: number[] = [];

    for (let round = 0; round <= 13; round++) {
      const before = asked.length;
      await followActions(h.deps, { roundMs: 5_000 });
      if (asked.length > before) askedIn.push(round);
      h.clock.advance(5_000);
    }
    status = 'Succeeded';
    const stillRunning = await h.store.getAction('1', 'act-1');
    h.clock.advance(5_000);
    const notYet = await followActions(h.deps, { roundMs: 5_000 });
    h.clock.advance(5_000);
    const ended = await followActions(h.deps, { roundMs: 5_000 });

    // Every 5 s for the first 10 s, then every 10 s; past a minute every 20 s (rounds 12, 16).
    expect(askedIn).toEqual([0, 1, 2, 4, 6, 8, 10, 12]);
    expect(stillRunning).toMatchObject({ state: 'executing', remoteStatus: 'InProgress' });
    expect(notYet).toMatchObject({ inFlight: 1, checked: 0 });
    expect(ended).toMatchObject({ checked: 1, ended: 1 });
    expect(await h.store.getAction('1', 'act-1')).toMatchObject({ state: 'succeeded' });
  });

  it('asks about a window moving along all of them, due or not, when more are in flight than a round takes', async () => {
    const h = onRedis();
    const ids = Array.from({ length: 5 }, (_, i) => `act-${i}`);
    acceptIsolations();
    await submitAll(h, ids);
    answerStatus('InProgress');
    // Round 3 after the submissions: no check of any of them is due.
    h.clock.advance(15_000);

    const backlog = await followActions(h.deps, { perRound: 2, roundMs: 5_000 });
    const room = await followActions(h.deps, { perRound: 5, roundMs: 5_000 });

    expect(backlog).toMatchObject({ inFlight: 5, checked: 2 });
    expect(room).toMatchObject({ inFlight: 5, checked: 0 });
  });

  it('fails an action still running after the bounded wait, saying where to follow it', async () => {
    const h = onRedis();
    acceptIsolations();
    await seed(h.store, '1');
    await approveAction(h.deps, { incidentId: '1', actionId: 'act-1' }, EXPERT);
    await executeAction(h.deps, { incidentId: '1', actionId: 'act-1' });
    answerStatus('InProgress');
    h.clock.advance(10 * 60_000);

    await followActions(h.deps);

    expect(await h.store.getAction('1', 'act-1')).toMatchObject({
      state: 'failed',
      error:
        'Isolate still InProgress after 10 min; follow it in the Defender portal (Action center), action id ma-0',
    });
  });
});

describe('the follower of an earlier version', () => {
  it('leaves no BullMQ schedule behind: the runtime drops it, and its next run, when it starts its timers', async () => {
    const logger = createLogger('silent');
    const keyPrefix = prefix();
    const url = life.redis().url;
    // An earlier version: the follower as a job scheduled every 5 s in a lane of its own.
    const earlier = new BullMqQueue({
      url,
      keyPrefix,
      lanes: { [EARLIER_FOLLOW_LANE]: { jobs: [FOLLOW_JOB], concurrency: 1 } },
      logger,
    });
    closers.push(() => earlier.close());
    await earlier.every(FOLLOW_JOB, 5_000);
    const connection = createRedisConnection(url, { purpose: 'queue' });
    const left = new Queue(EARLIER_FOLLOW_LANE, { connection, prefix: `${keyPrefix}{bull}` });
    closers.push(async () => {
      await left.close();
      await connection.quit();
    });
    const leftBehind = async () => ({
      schedules: await left.getJobSchedulersCount(),
      runs: await left.getJobCountByTypes('delayed', 'wait', 'prioritized'),
    });
    expect(await leftBehind()).toEqual({ schedules: 1, runs: 1 });

    const queue = new BullMqQueue({ url, keyPrefix, lanes: JOB_LANES, logger });
    closers.push(() => queue.close());
    const runtime = assembleRuntime(loadConfig({ LOG_LEVEL: 'silent' }), logger, {
      store: redisStore(),
      queue,
    });
    closers.push(() => runtime.close());
    await queue.start();
    await runtime.startTimers();

    expect(await leftBehind()).toEqual({ schedules: 0, runs: 0 });
  });
});

describe('following a soft delete of email', () => {
  const EMAILS = '/msgraph/beta/security/collaboration/analyzedEmails';
  const EMAIL_ID = 'a3f9c1e7-0b2d-4c5e-8f6a-91d3b7e2c4f0-bea';
  const NETWORK_MESSAGE_ID = '0c8e4a2f-6b1d-4f3e-9a70-08dd62d1c4b5';
  const ACTION_CENTER =
    'https://security.microsoft.com/action-center/history?filters=%7B%22bulkId%22%3A%5B%222e1f0b1c%22%5D%7D';
  /** Graph, answering only requests that carry the Graph token. */
  const graph = () => nock(GRAPH_ORIGIN, { reqheaders: { authorization: `Bearer ${GRAPH_TOKEN}` } });

  /** `GET analyzedEmails/{id}` in the documented shape, the latest delivery at `location`. */
  function analyzedEmail(location: string) {
    const { value } = fixture<{ value: Record<string, unknown> }>('analyzed-email');
    const latest = value.latestDelivery as Record<string, unknown>;
    return fixture('analyzed-email', { value: { ...value, latestDelivery: { ...latest, location } } });
  }

  /** An incident with a soft delete of the message to Bea; Graph lists its analyzed email and takes the remediation, counting POSTs. */
  async function submitted(h: ReturnType<typeof onRedis>) {
    const posts: unknown[] = [];
    graph()
      .get(EMAILS)
      .query(true)
      .reply(200, { value: [fixture('analyzed-emails').value as unknown[]].flat().slice(0, 1) })
      .post(`${EMAILS}/remediate`)
      .times(2)
      .reply((_uri, body) => {
        posts.push(body);
        return [202, '', { Location: ACTION_CENTER }];
      });
    const target = { networkMessageId: NETWORK_MESSAGE_ID, recipient: 'bea.ortiz@contoso.com' };
    await h.store.upsertIncident(
      incidentRecord('1', { messages: [target] }),
      [actionRecord('1', 'act-1', { type: 'softDeleteEmails', target })],
      [],
    );
    await approveAction(h.deps, { incidentId: '1', actionId: 'act-1' }, EXPERT);
    await executeAction(h.deps, { incidentId: '1', actionId: 'act-1' });
    return posts;
  }

  it('shows "submitted" until Defender has the email in deleted items, then succeeds', async () => {
    const h = onRedis();
    const posts = await submitted(h);
    const onSubmit = await h.store.getAction('1', 'act-1');
    const inbox = graph().get(`${EMAILS}/${EMAIL_ID}`).reply(200, analyzedEmail('inbox_folder'));
    h.clock.advance(5_000);
    const first = await followActions(h.deps);
    const waiting = await h.store.getAction('1', 'act-1');
    const deleted = graph().get(`${EMAILS}/${EMAIL_ID}`).reply(200, analyzedEmail('deletedFolder'));
    h.clock.advance(5_000);

    const second = await followActions(h.deps);

    expect(posts).toHaveLength(1);
    expect(onSubmit).toMatchObject({
      state: 'executing',
      externalId: ACTION_CENTER,
      remoteItems: [EMAIL_ID],
      remoteStatus: 'submitted',
      progress: 'Soft delete submitted: 0 of 1 email(s) in deleted items',
    });
    expect(first).toMatchObject({ inFlight: 1, checked: 1, ended: 0 });
    expect(waiting).toMatchObject({
      state: 'executing',
      progress: 'Soft delete submitted: 0 of 1 email(s) in deleted items',
    });
    expect(second).toMatchObject({ ended: 1 });
    expect(await h.store.getAction('1', 'act-1')).toMatchObject({
      state: 'succeeded',
      result: `Defender: 1 email(s) soft-deleted (now in deleted items); Action center: ${ACTION_CENTER}`,
    });
    expect(inbox.isDone() && deleted.isDone()).toBe(true);
  });

  it('fails with the reason Defender gives', async () => {
    const h = onRedis();
    await submitted(h);
    graph().get(`${EMAILS}/${EMAIL_ID}`).reply(200, analyzedEmail('onprem_external'));

    await followActions(h.deps);

    expect(await h.store.getAction('1', 'act-1')).toMatchObject({
      state: 'failed',
      error: `soft delete of 1 email(s) failed: email ${EMAIL_ID} was delivered to an on-premises or external mailbox, which Defender cannot remediate (latest delivery location onprem_external); see Action center: ${ACTION_CENTER}`,
    });
  });

  it('fails after the bounded wait, saying where to follow it in Action center', async () => {
    const h = onRedis();
    await submitted(h);
    graph().get(`${EMAILS}/${EMAIL_ID}`).reply(200, analyzedEmail('inbox_folder'));
    h.clock.advance(10 * 60_000);

    await followActions(h.deps);

    expect(await h.store.getAction('1', 'act-1')).toMatchObject({
      state: 'failed',
      error: `soft delete of 1 email(s) not confirmed by Defender after 10 min (0 of 1 in deleted items); follow it in Action center: ${ACTION_CENTER}`,
    });
  });

  it('does not remediate again when the execution runs again, even after its lease went stale', async () => {
    const h = onRedis();
    const posts = await submitted(h);

    const again = await executeAction(h.deps, { incidentId: '1', actionId: 'act-1' }, { token: 'run-b' });
    h.clock.advance(10 * 60_000);
    const stale = await executeAction(h.deps, { incidentId: '1', actionId: 'act-1' }, { token: 'run-c' });

    expect(again).toEqual({ status: 'skipped', reason: 'already submitted: followed by its remote id' });
    expect(stale).toEqual({ status: 'skipped', reason: 'already submitted: followed by its remote id' });
    expect(posts).toHaveLength(1);
    expect(await h.store.listActionsIn('submitted')).toHaveLength(1);
  });
});

describe('Defender rate limits', () => {
  it('queues an action when no slot is free, showing it on the card, and sends it later', async () => {
    const pacer = new DefenderPacer({
      perMinute: 1,
      perHour: 1_500,
      tenant: 'contoso',
      redis: life.redis().client(),
      keyPrefix: prefix(),
    });
    const h = onRedis(pacer);
    const posts = acceptIsolations();
    await seed(h.store, '1', ['act-1', 'act-2']);
    for (const actionId of ['act-1', 'act-2']) {
      await approveAction(h.deps, { incidentId: '1', actionId }, EXPERT);
    }
    h.jobs.jobs.length = 0;

    await executeAction(h.deps, { incidentId: '1', actionId: 'act-1' });
    const queued = await executeAction(h.deps, { incidentId: '1', actionId: 'act-2' });

    expect(posts).toEqual(['ma-0']);
    expect(queued).toMatchObject({
      status: 'done',
      action: {
        state: 'executing',
        unsent: true,
        progress: expect.stringMatching(
          /^Queued by Defender rate limit \(next slot at \d\d:\d\d:\d\d UTC\)$/,
        ),
      },
    });
    expect(queued.status === 'done' && queued.action.executionToken).toBeUndefined();
    const [job] = h.jobs.jobs;
    expect(job).toMatchObject({ kind: 'execute', incidentId: '1', actionId: 'act-2' });
    expect(job?.kind === 'execute' && job.delayMs).toBeGreaterThan(0);
    expect(job?.kind === 'execute' && job.delayMs).toBeLessThanOrEqual(60_000);
    expect((await h.store.listAudit('1')).filter((e) => e.outcome === 'failed')).toEqual([]);

    // Its delayed job runs once a slot is free (another window here: a new count).
    h.deps.executor = defender(h.clock);
    const later = await executeAction(h.deps, { incidentId: '1', actionId: 'act-2' });
    expect(later).toMatchObject({ status: 'done', action: { state: 'executing', externalId: 'ma-1' } });
    expect(posts).toEqual(['ma-0', 'ma-1']);
  });

  it('shares the slots among replicas through Redis', async () => {
    const keyPrefix = prefix();
    const replica = () => pacerOn(keyPrefix, 3, 1_500);
    const [a, b] = [replica(), replica()];

    const answers = [
      await a.take('isolate'),
      await b.take('isolate'),
      await a.take('isolate'),
      await b.take('isolate'),
    ];

    expect(answers.map((x) => x.ok)).toEqual([true, true, true, false]);
    expect(answers[3]).toMatchObject({ reason: 'Defender allows 3 isolate requests a minute per tenant' });
    // Each machine action is an API of its own in Defender's limits.
    expect(await b.take('runAntiVirusScan')).toEqual({ ok: true });
    const wait = answers[3]?.ok === false ? answers[3].retryAfterMs : 0;
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(60_000);
  });

  it('takes a slot from both windows or from neither: a full hour gives the minute slot back', async () => {
    const keyPrefix = prefix();
    const pacer = (perHour: number) => pacerOn(keyPrefix, 2, perHour);
    const strict = pacer(1);

    expect(await strict.take('isolate')).toEqual({ ok: true });
    expect(await strict.take('isolate')).toMatchObject({
      ok: false,
      reason: 'Defender allows 1 isolate requests an hour per tenant',
    });

    // The refused request took no minute slot: one of the minute's two is still free.
    const lenient = pacer(100);
    expect(await lenient.take('isolate')).toEqual({ ok: true });
    expect(await lenient.take('isolate')).toMatchObject({
      ok: false,
      reason: 'Defender allows 2 isolate requests a minute per tenant',
    });
  });

  it('holds every replica after a 429 for its Retry-After', async () => {
    const keyPrefix = prefix();
    const replica = () => pacerOn(keyPrefix, 100, 1_500);
    const [a, b] = [replica(), replica()];

    await a.pause('isolate', 1_500);
    const answer = await b.take('isolate');

    expect(answer.ok).toBe(false);
    const wait = answer.ok === false ? answer.retryAfterMs : 0;
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(2_000);
    expect(await b.take('runAntiVirusScan')).toEqual({ ok: true });
  });

  it('counts in the slots an earlier version took with rate-limiter-flexible, under the same keys', async () => {
    const keyPrefix = prefix();
    const { RateLimiterRedis } = await import('rate-limiter-flexible');
    const earlier = new RateLimiterRedis({
      storeClient: life.redis().client(),
      keyPrefix: `${keyPrefix}rate:defender-actions:minute`,
      points: 2,
      duration: 60,
    });
    await earlier.consume('contoso:isolate');
    await earlier.consume('contoso:isolate');
    const pacer = pacerOn(keyPrefix, 2, 1_500);

    const answer = await pacer.take('isolate');

    expect(answer).toMatchObject({
      ok: false,
      reason: 'Defender allows 2 isolate requests a minute per tenant',
    });
    const wait = answer.ok === false ? answer.retryAfterMs : 0;
    expect(wait).toBeGreaterThan(50_000);
    expect(wait).toBeLessThanOrEqual(60_000);
  });

  it('gives a count left without an expiry its window, so it cannot hold the slots for ever', async () => {
    const keyPrefix = prefix();
    const key = `${keyPrefix}rate:defender-actions:minute:contoso:isolate`;
    await life.redis().client().set(key, 5);
    const pacer = pacerOn(keyPrefix, 2, 1_500);

    expect((await pacer.take('isolate')).ok).toBe(false);

    const ttl = await life.redis().client().pttl(key);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('waits out a 429 of Defender through a delayed job, never failing the action', async () => {
    let posts = 0;
    mde()
      .post(POST_ISOLATE)
      .reply(() => {
        posts++;
        return [
          429,
          { error: { code: 'TooManyRequests', message: 'Rate limit is exceeded.' } },
          { 'Retry-After': '1' },
        ];
      })
      .post(POST_ISOLATE)
      .reply(() => {
        posts++;
        return [201, machineAction('ma-1', '1')];
      });
    answerStatus('Succeeded');
    const executor = new DefenderExecutor({
      credential: testCredential(),
      defenderApiUrl: MDE_URL,
      graphApiUrl: GRAPH_URL,
    });
    const queue = new LocalQueue({ logger: createLogger('silent'), backoffMs: 20 });
    const bot = await startBot({ env: { DEFENDER_FOLLOW_SECONDS: '1' }, parts: { executor, queue } });
    closers.push(() => bot.close());
    await seed(bot.runtime.store, '1');

    await approveAction(bot.runtime.deps, { incidentId: '1', actionId: 'act-1' }, EXPERT);

    await expect
      .poll(async () => (await bot.runtime.store.getAction('1', 'act-1'))?.state, {
        timeout: 15_000,
        interval: 100,
      })
      .toBe('succeeded');
    expect(posts).toBe(2);
    const audit = await bot.runtime.store.listAudit('1');
    expect(audit.map((e) => e.detail)).toContainEqual(
      expect.stringMatching(/^queued: Defender is throttling requests \(429\)/),
    );
    expect(audit.filter((e) => e.outcome === 'failed')).toEqual([]);
  });
});
