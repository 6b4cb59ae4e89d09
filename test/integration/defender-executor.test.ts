import { ClientSecretCredential, DefaultAzureCredential } from '@azure/identity';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAzureCredential, scopeFor } from '../../adapters/azure-credential.js';
import { DefenderExecutor } from '../../adapters/defender-executor.js';
import { joinUrl, retryAfterMs } from '../../adapters/defender-http.js';
import type { ActionType } from '../../core/actions.js';
import type { ActionRecord, ActionTarget } from '../../core/model.js';
import type { ExecutionOutcome, SubmitContext, SubmitResult } from '../../core/ports.js';
import {
  CLIENT_ID,
  executingAction,
  fakeContext,
  fakeTime,
  fixture,
  GRAPH_ORIGIN,
  GRAPH_TOKEN,
  GRAPH_URL,
  IDS,
  incidentRecord,
  MDE_ORIGIN,
  MDE_TOKEN,
  MDE_URL,
  nockLogin,
  recordOf,
  testCredential,
  tokenRequests,
} from './defender-helpers.js';

const MACHINE = `/prefix/api/machines/${IDS.machineId}`;
const LIST = '/prefix/api/machineactions';
const COMMENT = (verb: string) =>
  `MDR: ${verb} per incident 48213, action act-1 (approved by slack:U0EXPERT1)`;

let time: ReturnType<typeof fakeTime>;

function executor(overrides: Partial<ConstructorParameters<typeof DefenderExecutor>[0]> = {}) {
  return new DefenderExecutor({
    credential: testCredential(),
    defenderApiUrl: MDE_URL,
    graphApiUrl: GRAPH_URL,
    sleep: time.sleep,
    now: time.now,
    ...overrides,
  });
}

/** Defender, answering only requests that carry the MDE token. */
const mde = () => nock(MDE_ORIGIN, { reqheaders: { authorization: `Bearer ${MDE_TOKEN}` } });
/** Graph, answering only requests that carry the Graph token. */
const graph = () => nock(GRAPH_ORIGIN, { reqheaders: { authorization: `Bearer ${GRAPH_TOKEN}` } });

const machineAction = (overrides: Record<string, unknown> = {}) =>
  fixture('machine-action', { id: IDS.machineActionId, ...overrides });

/** The batched status query of submitted actions: `$filter=id in ('a','b')`. */
const byId = (...ids: string[]) => ({
  $filter: `id in (${(ids.length > 0 ? ids : [IDS.machineActionId]).map((id) => `'${id}'`).join(',')})`,
});
const listOf = (...actions: unknown[]) => ({ value: actions });

const BEA_EMAIL = 'a3f9c1e7-0b2d-4c5e-8f6a-91d3b7e2c4f0-bea';
const ALEX_EMAIL = 'a3f9c1e7-0b2d-4c5e-8f6a-91d3b7e2c4f0-alex';
const EMAILS = '/msgraph/beta/security/collaboration/analyzedEmails';
const ACTION_CENTER =
  'https://security.microsoft.com/action-center/history?filters=%7B%22bulkId%22%3A%5B%222e1f0b1c%22%5D%7D';

/**
 * `GET analyzedEmails/{id}` as the beta docs show it (wrapped in `value`), the email's latest delivery
 * at `location`.
 */
function analyzedEmail(id: string, location: string) {
  const { value } = fixture<{ value: Record<string, unknown> }>('analyzed-email');
  const latest = value.latestDelivery as Record<string, unknown>;
  return fixture('analyzed-email', {
    value: { ...value, id, latestDelivery: { ...latest, location } },
  });
}

/** Graph answering one GET of analyzed email `id` with each of `locations` in turn; counts the GETs. */
function deliveries(id: string, ...locations: string[]) {
  const asked = { count: 0 };
  const scope = graph();
  for (const location of locations) {
    scope.get(`${EMAILS}/${id}`).reply(() => {
      asked.count++;
      return [200, analyzedEmail(id, location)];
    });
  }
  return asked;
}

/**
 * Submit, then follow as the core does: the submitted id (and items) is recorded, and each 5 s round asks `check`
 * until the action ends. Progress is recorded when it changes, as the card shows it.
 */
async function carryOut(
  ex: DefenderExecutor,
  action: ActionRecord,
  context: SubmitContext = fakeContext().context,
): Promise<{ outcome: ExecutionOutcome; sent: SubmitResult }> {
  const record = recordOf(context);
  const sent = await ex.submit(action, context);
  if (sent.kind === 'finished') {
    if (sent.externalId) record.checkpoints.push(sent.externalId);
    return { outcome: sent.outcome, sent };
  }
  if (sent.kind !== 'submitted') throw new Error(`not submitted: ${JSON.stringify(sent)}`);
  if (sent.externalId !== action.externalId) record.checkpoints.push(sent.externalId);
  if (sent.progress !== action.progress) record.progress.push(sent.progress);
  let current: ActionRecord = {
    ...action,
    externalId: sent.externalId,
    ...(sent.items ? { remoteItems: sent.items } : {}),
    submittedAt: action.submittedAt ?? new Date(time.now()).toISOString(),
    remoteStatus: sent.status,
    progress: sent.progress,
  };
  for (let round = 0; round < 1_000; round++) {
    await time.sleep(5_000);
    const [found] = await ex.check([current]);
    if (found?.kind === 'finished') return { outcome: found.outcome, sent };
    if (found?.kind === 'running' && found.progress !== current.progress) {
      record.progress.push(found.progress);
      current = { ...current, remoteStatus: found.status, progress: found.progress };
    }
  }
  throw new Error('the action never ended');
}

/** The pending-action lookup the executor does before any second POST. */
function pendingLookup(type: string, status: string) {
  return {
    $filter: `machineId eq '${IDS.machineId}' and type eq '${type}' and status eq '${status}'`,
  };
}

beforeAll(() => {
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
});

afterAll(() => {
  nock.enableNetConnect();
});

beforeEach(() => {
  time = fakeTime();
  nockLogin();
});

afterEach(() => {
  nock.cleanAll();
});

describe('DefenderExecutor: the Defender for Endpoint actions', () => {
  const cases: {
    type: ActionType;
    path: string;
    mdeType: string;
    target: ActionTarget;
    body: Record<string, string>;
  }[] = [
    {
      type: 'isolateDevice',
      path: 'isolate',
      mdeType: 'Isolate',
      target: { deviceId: IDS.machineId },
      body: { Comment: COMMENT('isolate'), IsolationType: 'Full' },
    },
    {
      type: 'releaseDeviceFromIsolation',
      path: 'unisolate',
      mdeType: 'Unisolate',
      target: { deviceId: IDS.machineId },
      body: { Comment: COMMENT('release from isolation') },
    },
    {
      type: 'runAntivirusScan',
      path: 'runAntiVirusScan',
      mdeType: 'RunAntiVirusScan',
      target: { deviceId: IDS.machineId },
      body: { Comment: COMMENT('quick antivirus scan'), ScanType: 'Quick' },
    },
    {
      type: 'stopAndQuarantineFile',
      path: 'StopAndQuarantineFile',
      mdeType: 'StopAndQuarantineFile',
      target: { deviceId: IDS.machineId, sha1: IDS.sha1 },
      body: { Comment: COMMENT('stop and quarantine file'), Sha1: IDS.sha1 },
    },
    {
      type: 'restrictAppExecution',
      path: 'restrictCodeExecution',
      mdeType: 'RestrictCodeExecution',
      target: { deviceId: IDS.machineId },
      body: { Comment: COMMENT('restrict app execution') },
    },
    {
      type: 'removeAppRestriction',
      path: 'unrestrictCodeExecution',
      mdeType: 'UnrestrictCodeExecution',
      target: { deviceId: IDS.machineId },
      body: { Comment: COMMENT('remove app restriction') },
    },
  ];

  it.each(cases)(
    'carries out $type as POST /api/machines/{id}/$path',
    async ({ type, path, mdeType, target, body }) => {
      const sent: unknown[] = [];
      const post = mde()
        .matchHeader('content-type', 'application/json')
        .post(`${MACHINE}/${path}`, (b) => {
          sent.push(b);
          return true;
        })
        .reply(201, machineAction({ type: mdeType }));
      const poll = mde()
        .get(LIST)
        .query(byId())
        .reply(200, listOf(machineAction({ type: mdeType, status: 'Succeeded' })));
      const { context, checkpoints } = fakeContext();

      const { outcome } = await carryOut(executor(), executingAction(type, target), context);

      expect(outcome).toEqual({
        ok: true,
        detail: `Defender: ${mdeType} Succeeded on ${IDS.machineName} (action id ${IDS.machineActionId})`,
      });
      expect(sent).toEqual([body]);
      expect(checkpoints).toEqual([IDS.machineActionId]);
      expect(post.isDone() && poll.isDone()).toBe(true);
    },
  );

  it.each([
    { recorded: 'Full', sent: 'Full' },
    { recorded: 'Quick', sent: 'Quick' },
    { recorded: undefined, sent: 'Quick' },
    // A record edited outside the bot is never trusted beyond the two scans Defender knows.
    { recorded: 'Boot', sent: 'Quick' },
  ])('sends ScanType $sent for a scan recorded as $recorded', async ({ recorded, sent }) => {
    const bodies: unknown[] = [];
    mde()
      .post(`${MACHINE}/runAntiVirusScan`, (b) => {
        bodies.push(b);
        return true;
      })
      .reply(201, machineAction({ type: 'RunAntiVirusScan' }))
      .get(LIST)
      .query(byId())
      .reply(200, listOf(machineAction({ type: 'RunAntiVirusScan', status: 'Succeeded' })));
    const action = executingAction(
      'runAntivirusScan',
      { deviceId: IDS.machineId },
      recorded ? { scanType: recorded as ActionRecord['scanType'] } : {},
    );

    const { outcome } = await carryOut(executor(), action, fakeContext().context);

    expect(outcome.ok).toBe(true);
    expect(bodies).toEqual([{ Comment: COMMENT(`${sent.toLowerCase()} antivirus scan`), ScanType: sent }]);
  });

  it('asks for a token for the Defender host of the base URL, not its path prefix', async () => {
    mde()
      .post(`${MACHINE}/isolate`)
      .reply(201, machineAction())
      .get(LIST)
      .query(byId())
      .reply(200, listOf(machineAction({ status: 'Succeeded' })));

    await carryOut(
      executor(),
      executingAction('isolateDevice', { deviceId: IDS.machineId }),
      fakeContext().context,
    );

    expect(tokenRequests).toHaveLength(1);
    expect(Object.fromEntries(tokenRequests[0] ?? [])).toMatchObject({
      grant_type: 'client_credentials',
      client_id: CLIENT_ID,
      client_secret: 'test-secret-value',
      scope: `${MDE_ORIGIN}/.default`,
    });
  });

  it('follows a machine action through Pending and InProgress to Succeeded, showing each status', async () => {
    mde()
      .post(`${MACHINE}/isolate`)
      .reply(201, machineAction())
      .get(LIST)
      .query(byId())
      .reply(200, listOf(machineAction()))
      .get(LIST)
      .query(byId())
      .reply(200, listOf(machineAction({ status: 'InProgress' })))
      .get(LIST)
      .query(byId())
      .reply(200, listOf(machineAction({ status: 'Succeeded' })));
    const { context, progress, checkpoints } = fakeContext();

    const { outcome } = await carryOut(
      executor(),
      executingAction('isolateDevice', { deviceId: IDS.machineId }),
      context,
    );

    expect(outcome.ok).toBe(true);
    expect(progress).toEqual(['Defender: Pending', 'Defender: InProgress']);
    expect(checkpoints).toEqual([IDS.machineActionId]);
    expect(time.waits).toEqual([5000, 5000, 5000]);
  });

  it.each(['Failed', 'TimeOut', 'Cancelled'])(
    'reports a machine action that ends %s as failed',
    async (status) => {
      mde()
        .post(`${MACHINE}/isolate`)
        .reply(201, machineAction())
        .get(LIST)
        .query(byId())
        .reply(200, listOf(machineAction({ status: 'InProgress' })))
        .get(LIST)
        .query(byId())
        .reply(200, listOf(machineAction({ status })));

      const { outcome } = await carryOut(
        executor(),
        executingAction('isolateDevice', { deviceId: IDS.machineId }),
        fakeContext().context,
      );

      expect(outcome).toEqual({
        ok: false,
        reason: `Defender reported Isolate ${status} on ${IDS.machineName} (action id ${IDS.machineActionId})`,
      });
    },
  );

  it('compares the final status case-insensitively', async () => {
    mde()
      .post(`${MACHINE}/isolate`)
      .reply(201, machineAction())
      .get(LIST)
      .query(byId())
      .reply(200, listOf(machineAction({ status: 'succeeded' })));

    const { outcome } = await carryOut(
      executor(),
      executingAction('isolateDevice', { deviceId: IDS.machineId }),
      fakeContext().context,
    );

    expect(outcome.ok).toBe(true);
  });

  it('stops waiting after the bounded time and says where to follow the action', async () => {
    mde()
      .post(`${MACHINE}/isolate`)
      .reply(201, machineAction())
      .get(LIST)
      .query(byId())
      .times(200)
      .reply(200, listOf(machineAction()));

    const { outcome } = await carryOut(
      executor(),
      executingAction('isolateDevice', { deviceId: IDS.machineId }),
      fakeContext().context,
    );

    expect(outcome).toEqual({
      ok: false,
      reason: `Isolate still Pending after 10 min; follow it in the Defender portal (Action center), action id ${IDS.machineActionId}`,
    });
    expect(time.waits.reduce((a, b) => a + b, 0)).toBe(10 * 60_000);
  });

  it('asks again next round after a passing 503 while the action runs', async () => {
    mde()
      .post(`${MACHINE}/isolate`)
      .reply(201, machineAction())
      .get(LIST)
      .query(byId())
      .reply(503, fixture('error-service-unavailable'))
      .get(LIST)
      .query(byId())
      .reply(200, listOf(machineAction({ status: 'Succeeded' })));

    const { outcome } = await carryOut(
      executor(),
      executingAction('isolateDevice', { deviceId: IDS.machineId }),
      fakeContext().context,
    );

    expect(outcome.ok).toBe(true);
    expect(time.waits).toEqual([5000, 5000]);
  });

  it('creates one action when Defender answers 503, 503, 201, looking for a pending one before each re-POST', async () => {
    const log: string[] = [];
    mde()
      .post(`${MACHINE}/isolate`)
      .times(2)
      .reply(() => {
        log.push('POST');
        return [503, fixture('error-service-unavailable')];
      })
      .post(`${MACHINE}/isolate`)
      .reply(() => {
        log.push('POST');
        return [201, machineAction()];
      })
      .get('/prefix/api/machineactions')
      .query((q) => {
        log.push(`lookup ${String(q.$filter).split("status eq '")[1]?.replace("'", '') ?? 'own'}`);
        return true;
      })
      .times(6)
      .reply(200, fixture('machine-actions-empty'))
      .get(LIST)
      .query(byId())
      .reply(200, listOf(machineAction({ status: 'Succeeded' })));
    const { context, checkpoints } = fakeContext();

    const { outcome } = await carryOut(
      executor(),
      executingAction('isolateDevice', { deviceId: IDS.machineId }),
      context,
    );

    expect(outcome.ok).toBe(true);
    expect(log).toEqual([
      'POST',
      'lookup own',
      'lookup Pending',
      'lookup InProgress',
      'POST',
      'lookup own',
      'lookup Pending',
      'lookup InProgress',
      'POST',
    ]);
    expect(checkpoints).toEqual([IDS.machineActionId]);
  });

  it('adopts the action a lost POST created instead of sending it again', async () => {
    const api = mde()
      .post(`${MACHINE}/isolate`)
      // An Error, as the socket gives one (nock emits a plain object on no request event of node:https).
      .replyWithError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))
      // No action carrying this action's marker (the fixture's comment is another tool's)...
      .get('/prefix/api/machineactions')
      .query({ $filter: `machineId eq '${IDS.machineId}' and type eq 'Isolate'` })
      .reply(200, fixture('machine-actions-empty'))
      // ...but a pending one of the same type, which Defender would refuse a second of: adopted.
      .get('/prefix/api/machineactions')
      .query(pendingLookup('Isolate', 'Pending'))
      .reply(200, { value: [machineAction()] })
      .get(LIST)
      .query(byId())
      .reply(200, listOf(machineAction({ status: 'Succeeded' })));
    const { context, checkpoints } = fakeContext();

    const { outcome } = await carryOut(
      executor(),
      executingAction('isolateDevice', { deviceId: IDS.machineId }),
      context,
    );

    expect(outcome.ok).toBe(true);
    expect(checkpoints).toEqual([IDS.machineActionId]);
    expect(api.isDone()).toBe(true);
  });

  it('sends nothing again when it cannot check for a pending action after a 503', async () => {
    let posts = 0;
    mde()
      .post(`${MACHINE}/isolate`)
      .times(5)
      .reply(() => {
        posts++;
        return [503, fixture('error-service-unavailable')];
      })
      .get('/prefix/api/machineactions')
      .query(true)
      .reply(403, fixture('error-forbidden'));

    const { outcome } = await carryOut(
      executor(),
      executingAction('isolateDevice', { deviceId: IDS.machineId }),
      fakeContext().context,
    );

    expect(posts).toBe(1);
    expect(outcome.ok).toBe(false);
    expect(!outcome.ok && outcome.reason).toMatch(/was not sent again.*403.*Machine\.Read\.All/);
  });

  it('gives up after the bounded number of 5xx answers with a clear reason', async () => {
    let posts = 0;
    mde()
      .post(`${MACHINE}/runAntiVirusScan`)
      .times(10)
      .reply(() => {
        posts++;
        return [502, 'Bad Gateway'];
      })
      .get('/prefix/api/machineactions')
      .query(true)
      .times(20)
      .reply(200, fixture('machine-actions-empty'));

    const { outcome } = await carryOut(
      executor({ maxRetries: 2 }),
      executingAction('runAntivirusScan', { deviceId: IDS.machineId }),
      fakeContext().context,
    );

    expect(posts).toBe(3);
    expect(outcome).toEqual({
      ok: false,
      reason:
        'Defender answered 502 to POST runAntiVirusScan; gave up after 3 requests and no pending RunAntiVirusScan action was found',
    });
  });

  it('takes a 429 as a wait, never a failure: nothing more is sent until its Retry-After, then it is sent once', async () => {
    let posts = 0;
    mde()
      .post(`${MACHINE}/isolate`)
      .reply(() => {
        posts++;
        return [
          429,
          { error: { code: 'TooManyRequests', message: 'Rate limit is exceeded.', target: 'c0ffee' } },
          { 'Retry-After': '30' },
        ];
      })
      .post(`${MACHINE}/isolate`)
      .reply(() => {
        posts++;
        return [201, machineAction()];
      })
      .get(LIST)
      .query(byId())
      .reply(200, listOf(machineAction({ status: 'Succeeded' })));
    const paced = executor();
    const action = executingAction('isolateDevice', { deviceId: IDS.machineId });

    const first = await paced.submit(action, fakeContext().context);
    const meanwhile = await paced.submit(action, fakeContext().context);

    expect(first).toMatchObject({
      kind: 'throttled',
      retryAfterMs: 30_000,
      reason: expect.stringContaining('throttling requests (429)'),
    });
    expect(meanwhile).toMatchObject({ kind: 'throttled' });
    expect(posts).toBe(1);
    expect(time.waits).toEqual([]);

    // After the wait (a new process here: the pause is in real time), it is sent once.
    const { outcome } = await carryOut(executor(), action, fakeContext().context);
    expect(outcome.ok).toBe(true);
    expect(posts).toBe(2);
  });

  it('fails at once on 403 and names the missing permission', async () => {
    mde().post(`${MACHINE}/isolate`).reply(403, fixture('error-forbidden'));

    const { outcome } = await carryOut(
      executor(),
      executingAction('isolateDevice', { deviceId: IDS.machineId }),
      fakeContext().context,
    );

    expect(outcome.ok).toBe(false);
    expect(!outcome.ok && outcome.reason).toMatch(
      /^Defender answered 403 Forbidden to POST isolate: the app registration lacks the application permission Machine\.Isolate/,
    );
    expect(time.waits).toEqual([]);
  });

  it('fails at once on 401 and names the permission to consent to', async () => {
    mde()
      .post(`${MACHINE}/restrictCodeExecution`)
      .reply(401, { error: { code: 'Unauthorized', message: 'x' } });

    const { outcome } = await carryOut(
      executor(),
      executingAction('restrictAppExecution', { deviceId: IDS.machineId }),
      fakeContext().context,
    );

    expect(!outcome.ok && outcome.reason).toMatch(/401 Unauthorized.*Machine\.RestrictExecution/);
  });

  it('says the device was not found on 404', async () => {
    mde().post(`${MACHINE}/isolate`).reply(404, fixture('error-not-found'));

    const { outcome } = await carryOut(
      executor(),
      executingAction('isolateDevice', { deviceId: IDS.machineId }),
      fakeContext().context,
    );

    expect(!outcome.ok && outcome.reason).toMatch(
      new RegExp(
        `^device ${IDS.machineId} was not found in Defender \\(Defender answered 404 to POST isolate\\)`,
      ),
    );
  });

  it('adopts the pending action on 400 "already in progress" and never POSTs twice', async () => {
    let posts = 0;
    mde()
      .post(`${MACHINE}/isolate`)
      .times(3)
      .reply(() => {
        posts++;
        return [
          400,
          fixture('error-active-request-exists'),
          { 'Content-Type': 'application/json; charset=utf-8' },
        ];
      })
      .get('/prefix/api/machineactions')
      .query(pendingLookup('Isolate', 'Pending'))
      .reply(200, { value: [machineAction({ id: 'pending-1', requestorComment: 'earlier request' })] })
      .get(LIST)
      .query(byId('pending-1'))
      .reply(200, listOf(machineAction({ id: 'pending-1', status: 'Succeeded' })));
    const { context, checkpoints } = fakeContext();

    const { outcome } = await carryOut(
      executor(),
      executingAction('isolateDevice', { deviceId: IDS.machineId }),
      context,
    );

    expect(posts).toBe(1);
    expect(checkpoints).toEqual(['pending-1']);
    expect(outcome).toEqual({
      ok: true,
      detail: `Defender: Isolate Succeeded on ${IDS.machineName} (action id pending-1)`,
    });
  });

  it('adopts an InProgress action when nothing is Pending', async () => {
    mde()
      .post(`${MACHINE}/unisolate`)
      .reply(400, { error: { code: 'BadRequest', message: 'Action is already in progress', target: 'x' } })
      .get('/prefix/api/machineactions')
      .query(pendingLookup('Unisolate', 'Pending'))
      .reply(200, fixture('machine-actions-empty'))
      .get('/prefix/api/machineactions')
      .query(pendingLookup('Unisolate', 'InProgress'))
      .reply(200, { value: [machineAction({ id: 'running-1', type: 'Unisolate', status: 'InProgress' })] })
      .get(LIST)
      .query(byId('running-1'))
      .reply(200, listOf(machineAction({ id: 'running-1', type: 'Unisolate', status: 'Succeeded' })));
    const { context, progress } = fakeContext();

    const { outcome } = await carryOut(
      executor(),
      executingAction('releaseDeviceFromIsolation', { deviceId: IDS.machineId }),
      context,
    );

    expect(outcome.ok).toBe(true);
    expect(progress).toEqual(['Defender: InProgress']);
  });

  it('prefers the action carrying its own marker on 400 "already in progress"', async () => {
    const other = 'MDR: isolate per incident 48213, action act-10 (approved by slack:U0EXPERT1)';
    mde()
      .post(`${MACHINE}/isolate`)
      .reply(400, fixture('error-active-request-exists'))
      .get(LIST)
      .query(pendingLookup('Isolate', 'Pending'))
      .reply(200, {
        value: [
          machineAction({ id: 'someone-else', requestorComment: 'isolated by hand' }),
          machineAction({ id: 'act-10s', requestorComment: other }),
          machineAction({ id: 'mine', requestorComment: COMMENT('isolate') }),
        ],
      });
    const { context } = fakeContext();

    const sent = await executor().submit(
      executingAction('isolateDevice', { deviceId: IDS.machineId }),
      context,
    );

    expect(sent).toMatchObject({ kind: 'submitted', externalId: 'mine' });
  });

  describe('resuming a run that stopped', () => {
    const startedAt = '2025-03-14T09:09:10.000Z';
    const resuming = () =>
      executingAction('isolateDevice', { deviceId: IDS.machineId }, { executingSince: startedAt });
    const ownLookup = { $filter: `machineId eq '${IDS.machineId}' and type eq 'Isolate'` };

    it('sends it when the only action with its marker is older than its start (an earlier life of the ids)', async () => {
      let posts = 0;
      mde()
        .get(LIST)
        .query(ownLookup)
        .reply(200, {
          value: [
            machineAction({
              id: 'long-ago',
              status: 'Succeeded',
              requestorComment: COMMENT('isolate'),
              creationDateTimeUtc: '2025-03-14T08:00:00.0000000Z',
            }),
          ],
        })
        .post(`${MACHINE}/isolate`, { Comment: COMMENT('isolate'), IsolationType: 'Full' })
        .reply(() => {
          posts++;
          return [201, machineAction({ id: 'new-1' })];
        });

      const sent = await executor().submit(
        resuming(),
        fakeContext(incidentRecord(), { resume: true }).context,
      );

      expect(posts).toBe(1);
      expect(sent).toMatchObject({ kind: 'submitted', externalId: 'new-1' });
    });

    it('adopts its own action, already ended, after a POST answered 503 that Defender had in fact created', async () => {
      let posts = 0;
      mde()
        .post(`${MACHINE}/isolate`)
        .reply(() => {
          posts++;
          return [503, fixture('error-service-unavailable')];
        })
        .get(LIST)
        .query(ownLookup)
        .reply(200, {
          value: [
            machineAction({
              id: 'created-anyway',
              status: 'Succeeded',
              requestorComment: COMMENT('isolate'),
              creationDateTimeUtc: '2025-03-14T09:09:10.5000000Z',
            }),
          ],
        });

      const sent = await executor().submit(resuming(), fakeContext(incidentRecord()).context);

      expect(posts).toBe(1);
      expect(sent).toMatchObject({ kind: 'finished', externalId: 'created-anyway', outcome: { ok: true } });
    });

    it('adopts its own action, already ended, when the last allowed POST answered 503 but Defender had created it', async () => {
      let posts = 0;
      mde()
        .post(`${MACHINE}/isolate`)
        .reply(() => {
          posts++;
          return [503, fixture('error-service-unavailable')];
        })
        .get(LIST)
        .query(ownLookup)
        .reply(200, {
          value: [
            machineAction({
              id: 'created-by-the-last',
              status: 'Succeeded',
              requestorComment: COMMENT('isolate'),
              creationDateTimeUtc: '2025-03-14T09:09:10.5000000Z',
            }),
          ],
        });

      // No retry left after the first POST: what it created is still found, not reported as a failure.
      const sent = await executor({ maxRetries: 0 }).submit(
        resuming(),
        fakeContext(incidentRecord()).context,
      );

      expect(posts).toBe(1);
      expect(sent).toMatchObject({
        kind: 'finished',
        externalId: 'created-by-the-last',
        outcome: { ok: true },
      });
    });

    it('reads every page of the lookup and adopts its own action, ended, with its outcome', async () => {
      mde()
        .get(LIST)
        .query(ownLookup)
        .reply(200, {
          value: [machineAction({ id: 'other', status: 'Succeeded', requestorComment: 'isolated by hand' })],
          '@odata.nextLink': `${MDE_URL}/api/machineactions?$skiptoken=page-2`,
        })
        .get(LIST)
        .query({ $skiptoken: 'page-2' })
        .reply(200, {
          value: [
            machineAction({
              id: 'mine',
              status: 'Cancelled',
              cancellationComment: 'cancelled in the portal',
              requestorComment: COMMENT('isolate'),
              creationDateTimeUtc: '2025-03-14T09:09:11.2000000Z',
            }),
          ],
        });

      const sent = await executor().submit(
        resuming(),
        fakeContext(incidentRecord(), { resume: true }).context,
      );

      expect(sent).toEqual({
        kind: 'finished',
        externalId: 'mine',
        outcome: {
          ok: false,
          reason: `Defender reported Isolate Cancelled on ${IDS.machineName}: cancelled in the portal (action id mine)`,
        },
      });
    });

    it('sends nothing while the lookup is refused for the rate limit, and the next run looks again', async () => {
      mde()
        .get(LIST)
        .query(ownLookup)
        .reply(
          429,
          { error: { code: 'TooManyRequests', message: 'Rate limit is exceeded.', target: 'c0ffee' } },
          { 'Retry-After': '7' },
        );

      const sent = await executor().submit(
        resuming(),
        fakeContext(incidentRecord(), { resume: true }).context,
      );

      expect(sent).toMatchObject({ kind: 'throttled', retryAfterMs: 7_000, maybeSent: true });
    });
  });

  it('resumes polling after a restart without sending the action again', async () => {
    const api = mde()
      .get(LIST)
      .query(byId())
      .reply(200, listOf(machineAction({ status: 'InProgress' })))
      .get(LIST)
      .query(byId())
      .reply(200, listOf(machineAction({ status: 'Succeeded' })));
    const { context, progress, checkpoints } = fakeContext();
    const afterRestart = executor();

    const { outcome } = await carryOut(
      afterRestart,
      executingAction(
        'isolateDevice',
        { deviceId: IDS.machineId },
        { externalId: IDS.machineActionId, progress: 'Defender: Pending' },
      ),
      context,
    );

    expect(outcome.ok).toBe(true);
    expect(progress).toEqual(['Defender: InProgress']);
    expect(checkpoints).toEqual([]);
    expect(api.isDone()).toBe(true);
  });

  it('finds the device id in the evidence when the action names only the device', async () => {
    mde()
      .post(`${MACHINE}/isolate`)
      .reply(201, machineAction())
      .get(LIST)
      .query(byId())
      .reply(200, listOf(machineAction({ status: 'Succeeded' })));

    const { outcome } = await carryOut(
      executor(),
      executingAction('isolateDevice', { deviceName: IDS.machineName.toUpperCase() }),
      fakeContext().context,
    );

    expect(outcome.ok).toBe(true);
  });
});

describe('DefenderExecutor: the Microsoft Graph actions', () => {
  const USER = `/msgraph/v1.0/users/${IDS.userId}`;

  const SELECT = { $select: 'id,onPremisesSyncEnabled,onPremisesSecurityIdentifier' };
  const SID = 'S-1-5-21-989687458-3461180213-172365591-281652';
  const MDI_ID = '00104216-0539-4838-88b1-55baafdc296b';
  const AD_ACCOUNT = '256db173-930a-4991-9061-0d51a9a93ba5';
  const CORRELATION = 'ed2f052b-2a01-4cd9-acb3-f6145f83e1a5';
  const IDENTITY_ACCOUNTS = '/msgraph/v1.0/security/identities/identityAccounts';
  const CONFIRM = '/msgraph/v1.0/identityProtection/riskyUsers/confirmCompromised';
  const ROLES = '/msgraph/v1.0/roleManagement/directory/roleAssignments';
  const RESET_BODY = {
    passwordProfile: { forceChangePasswordNextSignIn: true, forceChangePasswordNextSignInWithMfa: true },
  };
  /** `GET /v1.0/users/{id}?$select=…` of a cloud-only user (`onPremisesSyncEnabled` null). */
  const cloudUser = {
    '@odata.context':
      'https://graph.microsoft.com/v1.0/$metadata#users(id,onPremisesSyncEnabled,onPremisesSecurityIdentifier)/$entity',
    id: IDS.userId,
    onPremisesSyncEnabled: null,
    onPremisesSecurityIdentifier: null,
  };
  const syncedUser = { ...cloudUser, onPremisesSyncEnabled: true, onPremisesSecurityIdentifier: SID };
  /** Graph reading the synced user, then answering its Defender for Identity account lookup. */
  const syncedAccount = (
    filter: Parameters<nock.Interceptor['query']>[0] = {
      $filter: `onPremisesSecurityIdentifier eq '${SID}'`,
    },
    accounts: object = fixture('graph-identity-accounts'),
  ) =>
    graph()
      .get(USER)
      .query(SELECT)
      .reply(200, syncedUser)
      .get(IDENTITY_ACCOUNTS)
      .query(filter)
      .reply(200, accounts);
  /** The invokeAction answer for `action` on the synced user's Active Directory account. */
  const invokeAnswer = (action: string) =>
    fixture('graph-invoke-action', {
      value: { accountId: AD_ACCOUNT, action, provider: 'activeDirectory', correlationId: CORRELATION },
    });

  it.each([
    {
      type: 'disableUser' as const,
      body: { accountEnabled: false },
      detail: 'account disabled (accountEnabled false)',
    },
    {
      type: 'enableUser' as const,
      body: { accountEnabled: true },
      detail: 'account enabled (accountEnabled true)',
    },
  ])('carries out $type of a cloud user as PATCH /v1.0/users/{id}', async ({ type, body, detail }) => {
    const api = graph().get(USER).query(SELECT).reply(200, cloudUser);
    const patched = graph().matchHeader('content-type', 'application/json').patch(USER, body).reply(204);

    const { outcome } = await carryOut(
      executor(),
      executingAction(type, { userId: IDS.userId, upn: IDS.upn }),
      fakeContext().context,
    );

    expect(outcome).toEqual({ ok: true, detail: `${IDS.userId}: ${detail}` });
    expect(api.isDone() && patched.isDone()).toBe(true);
    expect(tokenRequests.map((f) => f.get('scope'))).toEqual([`${GRAPH_ORIGIN}/.default`]);
  });

  it('carries out unsuspendUser of a cloud user as PATCH accountEnabled true', async () => {
    const api = graph()
      .get(USER)
      .query(SELECT)
      .reply(200, cloudUser)
      .patch(USER, { accountEnabled: true })
      .reply(204);

    const { outcome } = await carryOut(
      executor(),
      executingAction('unsuspendUser', { userId: IDS.userId }),
      fakeContext().context,
    );

    expect(outcome).toEqual({ ok: true, detail: `${IDS.userId}: account enabled (accountEnabled true)` });
    expect(api.isDone()).toBe(true);
  });

  it('addresses the user by UPN, URL-encoded, when there is no object id', async () => {
    const upn = "o'brien+ops@contoso.com";
    const api = graph()
      .get(`/msgraph/v1.0/users/${encodeURIComponent(upn)}`)
      .query(SELECT)
      .reply(200, cloudUser)
      .patch(`/msgraph/v1.0/users/${encodeURIComponent(upn)}`, { accountEnabled: false })
      .reply(204);

    const { outcome } = await carryOut(
      executor(),
      executingAction('disableUser', { upn }),
      fakeContext().context,
    );

    expect(outcome.ok).toBe(true);
    expect(api.isDone()).toBe(true);
  });

  it('carries out revokeUserTokens as POST revokeSignInSessions, accepting 200 or 204', async () => {
    const api = graph()
      .post(`${USER}/revokeSignInSessions`)
      .reply(200, { '@odata.context': 'x', value: true })
      .post(`${USER}/revokeSignInSessions`)
      .reply(204);
    const action = executingAction('revokeUserTokens', { userId: IDS.userId });

    const { outcome: first } = await carryOut(executor(), action, fakeContext().context);
    const { outcome: second } = await carryOut(executor(), action, fakeContext().context);

    expect(first).toEqual({
      ok: true,
      detail: `${IDS.userId}: sign-in sessions revoked (takes a few minutes to reach every app)`,
    });
    expect(second.ok).toBe(true);
    expect(api.isDone()).toBe(true);
  });

  it('carries out suspendUser of a cloud user as disable, then revoke sessions, and reports both', async () => {
    const log: string[] = [];
    graph()
      .get(USER)
      .query(SELECT)
      .reply(200, cloudUser)
      .patch(USER, { accountEnabled: false })
      .reply(() => {
        log.push('PATCH accountEnabled false');
        return [204];
      })
      .post(`${USER}/revokeSignInSessions`)
      .reply(() => {
        log.push('POST revokeSignInSessions');
        return [204];
      });

    const { outcome } = await carryOut(
      executor(),
      executingAction('suspendUser', { userId: IDS.userId, upn: IDS.upn }),
      fakeContext().context,
    );

    expect(log).toEqual(['PATCH accountEnabled false', 'POST revokeSignInSessions']);
    expect(outcome).toEqual({
      ok: true,
      detail: `${IDS.userId}: sign-in blocked (accountEnabled false); sign-in sessions revoked`,
    });
  });

  it('says what was done when suspendUser could disable but not revoke', async () => {
    graph()
      .get(USER)
      .query(SELECT)
      .reply(200, cloudUser)
      .patch(USER, { accountEnabled: false })
      .reply(204)
      .post(`${USER}/revokeSignInSessions`)
      .reply(403, fixture('graph-error-403'));

    const { outcome } = await carryOut(
      executor(),
      executingAction('suspendUser', { userId: IDS.userId }),
      fakeContext().context,
    );

    expect(!outcome.ok && outcome.reason).toMatch(
      /^5d9a.*: sign-in blocked \(accountEnabled false\), but revoking sessions failed: .*403.*User\.RevokeSessions\.All/,
    );
  });

  it('forces a password reset: change after MFA, sessions revoked, user confirmed compromised, each step listed', async () => {
    const log: string[] = [];
    const api = graph()
      .get(USER)
      .query(SELECT)
      .reply(200, cloudUser)
      .patch(USER, RESET_BODY)
      .reply(() => {
        log.push('PATCH passwordProfile');
        return [204];
      })
      .post(`${USER}/revokeSignInSessions`)
      .reply(() => {
        log.push('POST revokeSignInSessions');
        return [
          200,
          { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean', value: true },
        ];
      })
      .post(CONFIRM, { userIds: [IDS.userId] })
      .reply(() => {
        log.push('POST confirmCompromised');
        return [204];
      });

    const { outcome } = await carryOut(
      executor(),
      executingAction('forcePasswordReset', { userId: IDS.userId, upn: IDS.upn }),
      fakeContext().context,
    );

    expect(log).toEqual(['PATCH passwordProfile', 'POST revokeSignInSessions', 'POST confirmCompromised']);
    expect(outcome).toEqual({
      ok: true,
      detail: `${IDS.userId}: password change required at next sign-in, after MFA; sign-in sessions revoked; confirmed compromised in Identity Protection (user risk high)`,
    });
    expect(api.isDone()).toBe(true);
  });

  it('reports confirm compromised as skipped, not failed, when Graph answers 403 (no Entra ID P2)', async () => {
    graph()
      .get(USER)
      .query(SELECT)
      .reply(200, cloudUser)
      .patch(USER, RESET_BODY)
      .reply(204)
      .post(`${USER}/revokeSignInSessions`)
      .reply(204)
      .post(CONFIRM, { userIds: [IDS.userId] })
      .reply(403, fixture('graph-error-403'));

    const { outcome } = await carryOut(
      executor(),
      executingAction('forcePasswordReset', { userId: IDS.userId }),
      fakeContext().context,
    );

    expect(outcome).toEqual({
      ok: true,
      detail: `${IDS.userId}: password change required at next sign-in, after MFA; sign-in sessions revoked; confirm compromised skipped (needs Entra ID P2 / IdentityRiskyUser.ReadWrite.All)`,
    });
  });

  it('says which steps were done when revoking sessions fails after the password reset', async () => {
    graph()
      .get(USER)
      .query(SELECT)
      .reply(200, cloudUser)
      .patch(USER, RESET_BODY)
      .reply(204)
      .post(`${USER}/revokeSignInSessions`)
      .reply(403, fixture('graph-error-403'));

    const { outcome } = await carryOut(
      executor(),
      executingAction('forcePasswordReset', { userId: IDS.userId }),
      fakeContext().context,
    );

    expect(!outcome.ok && outcome.reason).toMatch(
      /^5d9a.*: password change required at next sign-in, after MFA; but revoking sign-in sessions failed: .*403.*User\.RevokeSessions\.All/,
    );
  });

  it('fails a confirm compromised refused for another reason than 403, saying what was done', async () => {
    graph()
      .get(USER)
      .query(SELECT)
      .reply(200, cloudUser)
      .patch(USER, RESET_BODY)
      .reply(204)
      .post(`${USER}/revokeSignInSessions`)
      .reply(204)
      .post(CONFIRM)
      .reply(400, { error: { code: 'BadRequest', message: 'Invalid user id.' } });

    const { outcome } = await carryOut(
      executor(),
      executingAction('forcePasswordReset', { userId: IDS.userId }),
      fakeContext().context,
    );

    expect(!outcome.ok && outcome.reason).toBe(
      `${IDS.userId}: password change required at next sign-in, after MFA; sign-in sessions revoked; but confirming the user compromised failed: Microsoft Graph answered 400 to POST riskyUsers/confirmCompromised (BadRequest: Invalid user id.)`,
    );
  });

  it.each([
    { type: 'disableUser' as const, mdi: 'disable', detail: 'account disabled' },
    { type: 'enableUser' as const, mdi: 'enable', detail: 'account enabled' },
  ])(
    'carries out $type of an on-premises synced user through Defender for Identity, never PATCH',
    async ({ type, mdi, detail }) => {
      let filter: unknown;
      const api = syncedAccount((q) => {
        filter = q.$filter;
        return true;
      });
      const invoked = graph()
        .matchHeader('content-type', 'application/json')
        .post(`${IDENTITY_ACCOUNTS}/${MDI_ID}/invokeAction`, {
          accountId: AD_ACCOUNT,
          action: mdi,
          identityProvider: 'activeDirectory',
        })
        .reply(200, invokeAnswer(mdi));

      const { outcome } = await carryOut(
        executor(),
        executingAction(type, { userId: IDS.userId, upn: IDS.upn }),
        fakeContext().context,
      );

      expect(filter).toBe(`onPremisesSecurityIdentifier eq '${SID}'`);
      expect(outcome).toEqual({
        ok: true,
        detail: `${IDS.userId}: ${detail} in Active Directory through Defender for Identity (correlation id ${CORRELATION})`,
      });
      expect(api.isDone() && invoked.isDone()).toBe(true);
    },
  );

  it('suspends an on-premises synced user through Defender for Identity (disable), then revokes sessions through Graph, never PATCH', async () => {
    const log: string[] = [];
    const invoked: unknown[] = [];
    syncedAccount()
      .post(`${IDENTITY_ACCOUNTS}/${MDI_ID}/invokeAction`)
      .reply((_uri, body) => {
        log.push('POST invokeAction');
        invoked.push(body);
        return [200, invokeAnswer('disable')];
      })
      .post(`${USER}/revokeSignInSessions`)
      .reply(() => {
        log.push('POST revokeSignInSessions');
        return [204];
      });
    const patched = graph()
      .patch(USER)
      .reply(() => {
        log.push('PATCH user');
        return [204];
      });

    const { outcome } = await carryOut(
      executor(),
      executingAction('suspendUser', { userId: IDS.userId, upn: IDS.upn }),
      fakeContext().context,
    );

    expect(log).toEqual(['POST invokeAction', 'POST revokeSignInSessions']);
    expect(invoked).toEqual([
      { accountId: AD_ACCOUNT, action: 'disable', identityProvider: 'activeDirectory' },
    ]);
    expect(patched.isDone()).toBe(false);
    expect(outcome).toEqual({
      ok: true,
      detail: `${IDS.userId}: account disabled in Active Directory through Defender for Identity (correlation id ${CORRELATION}); sign-in sessions revoked`,
    });
  });

  it('unsuspends an on-premises synced user through Defender for Identity (enable), never PATCH', async () => {
    const invoked: unknown[] = [];
    syncedAccount()
      .post(`${IDENTITY_ACCOUNTS}/${MDI_ID}/invokeAction`)
      .reply((_uri, body) => {
        invoked.push(body);
        return [200, invokeAnswer('enable')];
      });
    const patched = graph().patch(USER).reply(204);

    const { outcome } = await carryOut(
      executor(),
      executingAction('unsuspendUser', { userId: IDS.userId }),
      fakeContext().context,
    );

    expect(invoked).toEqual([
      { accountId: AD_ACCOUNT, action: 'enable', identityProvider: 'activeDirectory' },
    ]);
    expect(patched.isDone()).toBe(false);
    expect(outcome).toEqual({
      ok: true,
      detail: `${IDS.userId}: account enabled in Active Directory through Defender for Identity (correlation id ${CORRELATION})`,
    });
  });

  it('suspends nothing and says what to do when a synced user cannot be found in Defender for Identity', async () => {
    syncedAccount(true, { '@odata.context': 'x', value: [] });
    const sent = graph().post(/.*/).reply(204).patch(/.*/).reply(204);

    const { outcome } = await carryOut(
      executor(),
      executingAction('suspendUser', { userId: IDS.userId }),
      fakeContext().context,
    );

    expect(outcome).toEqual({
      ok: false,
      reason: `${IDS.userId} is synced from on-premises Active Directory, and Defender for Identity observes no Active Directory account with SID ${SID}, so nothing was sent: disable the account in Active Directory`,
    });
    expect(sent.isDone()).toBe(false);
  });

  it('forces the password reset of a synced user through Defender for Identity, then revokes and confirms compromised', async () => {
    const log: string[] = [];
    const api = syncedAccount()
      .post(`${IDENTITY_ACCOUNTS}/${MDI_ID}/invokeAction`, {
        accountId: AD_ACCOUNT,
        action: 'forcePasswordReset',
        identityProvider: 'activeDirectory',
      })
      .reply(() => {
        log.push('POST invokeAction forcePasswordReset');
        return [200, invokeAnswer('forcePasswordReset')];
      })
      .post(`${USER}/revokeSignInSessions`)
      .reply(() => {
        log.push('POST revokeSignInSessions');
        return [204];
      })
      .post(CONFIRM, { userIds: [IDS.userId] })
      .reply(() => {
        log.push('POST confirmCompromised');
        return [204];
      });

    const { outcome } = await carryOut(
      executor(),
      executingAction('forcePasswordReset', { userId: IDS.userId }),
      fakeContext().context,
    );

    expect(log).toEqual([
      'POST invokeAction forcePasswordReset',
      'POST revokeSignInSessions',
      'POST confirmCompromised',
    ]);
    expect(outcome).toEqual({
      ok: true,
      detail: `${IDS.userId}: password reset required at next sign-in in Active Directory through Defender for Identity (correlation id ${CORRELATION}); sign-in sessions revoked; confirmed compromised in Identity Protection (user risk high)`,
    });
    expect(api.isDone()).toBe(true);
  });

  it('sends nothing for a synced user Defender for Identity does not observe in Active Directory', async () => {
    syncedAccount(true, { value: [] });

    const { outcome } = await carryOut(
      executor(),
      executingAction('disableUser', { userId: IDS.userId }),
      fakeContext().context,
    );

    expect(outcome).toEqual({
      ok: false,
      reason: `${IDS.userId} is synced from on-premises Active Directory, and Defender for Identity observes no Active Directory account with SID ${SID}, so nothing was sent: disable the account in Active Directory`,
    });
  });

  it('names SecurityIdentitiesActions.ReadWrite.All when invokeAction is refused', async () => {
    syncedAccount(true)
      .post(`${IDENTITY_ACCOUNTS}/${MDI_ID}/invokeAction`)
      .reply(403, { error: { code: 'Forbidden', message: 'Missing permissions.' } });

    const { outcome } = await carryOut(
      executor(),
      executingAction('disableUser', { userId: IDS.userId }),
      fakeContext().context,
    );

    expect(outcome).toEqual({
      ok: false,
      reason: `${IDS.userId} is synced from on-premises Active Directory: Microsoft Graph answered 403 Forbidden to POST identityAccounts invokeAction disable: the app registration lacks the application permission SecurityIdentitiesActions.ReadWrite.All (grant it and give admin consent) (Forbidden: Missing permissions.)`,
    });
  });

  it('names the missing Graph permission on 403 when the user holds no admin role', async () => {
    graph()
      .get(USER)
      .query(SELECT)
      .reply(200, cloudUser)
      .patch(USER)
      .reply(403, fixture('graph-error-403'))
      .get(ROLES)
      .query({ $filter: `principalId eq '${IDS.userId}'` })
      .reply(200, { '@odata.context': 'x', value: [] });

    const { outcome } = await carryOut(
      executor(),
      executingAction('forcePasswordReset', { userId: IDS.userId }),
      fakeContext().context,
    );

    expect(outcome).toEqual({
      ok: false,
      reason:
        'Microsoft Graph answered 403 Forbidden to PATCH user: the app registration lacks the application permission User-PasswordProfile.ReadWrite.All (grant it and give admin consent) (Authorization_RequestDenied: Insufficient privileges to complete the operation.)',
    });
  });

  it('says the app needs a privileged Entra role, not a permission, on 403 for a user who holds an admin role', async () => {
    graph()
      .get(USER)
      .query(SELECT)
      .reply(200, cloudUser)
      .patch(USER, { accountEnabled: false })
      .reply(403, fixture('graph-error-403'))
      .get(ROLES)
      .query({ $filter: `principalId eq '${IDS.userId}'` })
      .reply(200, fixture('graph-role-assignments'));

    const { outcome } = await carryOut(
      executor(),
      executingAction('disableUser', { userId: IDS.userId }),
      fakeContext().context,
    );

    expect(outcome).toEqual({
      ok: false,
      reason: `Microsoft Graph answered 403 Forbidden to PATCH user: ${IDS.userId} holds a Microsoft Entra admin role (Global Administrator), so the app needs a privileged Microsoft Entra role that covers this user (Privileged Authentication Administrator; User Administrator covers only users without an admin role); this is not a missing API permission (Authorization_RequestDenied: Insufficient privileges to complete the operation.)`,
    });
  });

  it('names both causes of the 403 when the user roles cannot be read', async () => {
    graph()
      .get(USER)
      .query(SELECT)
      .reply(200, cloudUser)
      .patch(USER)
      .reply(403, fixture('graph-error-403'))
      .get(ROLES)
      .query(true)
      .reply(403, fixture('graph-error-403'));

    const { outcome } = await carryOut(
      executor(),
      executingAction('disableUser', { userId: IDS.userId }),
      fakeContext().context,
    );

    expect(!outcome.ok && outcome.reason).toBe(
      `Microsoft Graph answered 403 Forbidden to PATCH user: the app registration lacks the application permission User.EnableDisableAccount.All (grant it and give admin consent) (Authorization_RequestDenied: Insufficient privileges to complete the operation.); or, if ${IDS.userId} holds a Microsoft Entra admin role, the app needs a privileged Microsoft Entra role that covers this user (Privileged Authentication Administrator; User Administrator covers only users without an admin role) (its roles could not be read: RoleManagement.Read.Directory tells which)`,
    );
  });

  it('changes nothing when the user cannot be read first', async () => {
    graph()
      .get(USER)
      .query(SELECT)
      .reply(404, { error: { code: 'Request_ResourceNotFound', message: 'Resource does not exist.' } });

    const { outcome } = await carryOut(
      executor(),
      executingAction('enableUser', { userId: IDS.userId }),
      fakeContext().context,
    );

    expect(!outcome.ok && outcome.reason).toMatch(
      /^nothing was changed: user 5d9a.* was not found in Microsoft Entra ID \(Microsoft Graph answered 404 to GET user\)/,
    );
  });

  it('says the user was not found on 404', async () => {
    graph()
      .get(USER)
      .query(SELECT)
      .reply(200, cloudUser)
      .patch(USER)
      .reply(404, { error: { code: 'Request_ResourceNotFound', message: 'Resource does not exist.' } });

    const { outcome } = await carryOut(
      executor(),
      executingAction('enableUser', { userId: IDS.userId }),
      fakeContext().context,
    );

    expect(!outcome.ok && outcome.reason).toMatch(/^user 5d9a.* was not found in Microsoft Entra ID/);
  });

  it('retries a Graph 429 after its Retry-After and a 503 with back-off', async () => {
    graph()
      .get(USER)
      .query(SELECT)
      .reply(200, cloudUser)
      .patch(USER)
      .reply(429, fixture('graph-error-429'), { 'Retry-After': '7' })
      .patch(USER)
      .reply(503, fixture('graph-error-503'))
      .patch(USER)
      .reply(204);

    const { outcome } = await carryOut(
      executor(),
      executingAction('disableUser', { userId: IDS.userId }),
      fakeContext().context,
    );

    expect(outcome.ok).toBe(true);
    expect(time.waits).toEqual([7000, 2000]);
  });

  it("soft-deletes the recipient's analyzed email and succeeds once Defender shows it in deleted items", async () => {
    let remediation: unknown;
    let query: Record<string, unknown> = {};
    const api = graph()
      .get(EMAILS)
      .query((q) => {
        query = q;
        return true;
      })
      .reply(200, fixture('analyzed-emails'))
      .post(`${EMAILS}/remediate`, (b) => {
        remediation = b;
        return true;
      })
      .reply(202, '', { Location: ACTION_CENTER });
    const asked = deliveries(BEA_EMAIL, 'inbox_folder', 'deletedFolder');
    const { context, checkpoints, progress } = fakeContext();

    const { outcome, sent } = await carryOut(
      executor(),
      executingAction('softDeleteEmails', { networkMessageId: IDS.networkMessageId, recipient: IDS.bea }),
      context,
    );

    expect(query).toEqual({
      startTime: '2025-02-12T09:10:00.000Z',
      endTime: '2025-03-14T09:10:00.000Z',
      $filter: `networkMessageId eq '${IDS.networkMessageId}'`,
    });
    expect(remediation).toEqual({
      displayName: 'MDR: soft delete per incident 48213',
      description: `Soft delete of message ${IDS.networkMessageId} to ${IDS.bea}, approved by slack:U0EXPERT1`,
      severity: 'medium',
      action: 'softDelete',
      remediateSendersCopy: false,
      analyzedEmails: [{ id: BEA_EMAIL }],
    });
    expect(sent).toEqual({
      kind: 'submitted',
      externalId: ACTION_CENTER,
      status: 'submitted',
      progress: 'Soft delete submitted: 0 of 1 email(s) in deleted items',
      items: [BEA_EMAIL],
    });
    expect(progress).toEqual(['Soft delete submitted: 0 of 1 email(s) in deleted items']);
    expect(asked.count).toBe(2);
    expect(outcome).toEqual({
      ok: true,
      detail: `Defender: 1 email(s) soft-deleted (now in deleted items); Action center: ${ACTION_CENTER}`,
    });
    expect(checkpoints).toEqual([ACTION_CENTER]);
    expect(api.isDone()).toBe(true);
  });

  it('shows how many of several emails are in deleted items while it waits', async () => {
    graph()
      .get(EMAILS)
      .query(true)
      .reply(200, fixture('analyzed-emails'))
      .post(`${EMAILS}/remediate`)
      .reply(202, '', { Location: ACTION_CENTER });
    deliveries(BEA_EMAIL, 'deletedFolder', 'deletedFolder');
    deliveries(ALEX_EMAIL, 'junkFolder', 'deletedFolder');
    const { context, progress } = fakeContext();

    const { outcome } = await carryOut(
      executor(),
      executingAction('softDeleteEmails', { networkMessageId: IDS.networkMessageId }),
      context,
    );

    expect(progress).toEqual([
      'Soft delete submitted: 0 of 2 email(s) in deleted items',
      'Soft delete submitted: 1 of 2 email(s) in deleted items',
    ]);
    expect(outcome.ok && outcome.detail).toMatch(/^Defender: 2 email\(s\) soft-deleted/);
  });

  it('fails with the reason when Defender shows an email where no mailbox remediation reaches', async () => {
    graph()
      .get(EMAILS)
      .query(true)
      .reply(200, fixture('analyzed-emails'))
      .post(`${EMAILS}/remediate`)
      .reply(202, '', { Location: ACTION_CENTER });
    deliveries(BEA_EMAIL, 'inbox_folder', 'quarantine');

    const { outcome } = await carryOut(
      executor(),
      executingAction('softDeleteEmails', { networkMessageId: IDS.networkMessageId, recipient: IDS.bea }),
      fakeContext().context,
    );

    expect(outcome).toEqual({
      ok: false,
      reason: `soft delete of 1 email(s) failed: email ${BEA_EMAIL} is in quarantine, not in a mailbox (latest delivery location quarantine); see Action center: ${ACTION_CENTER}`,
    });
  });

  it('fails when Graph no longer finds a remediated email (404)', async () => {
    graph()
      .get(EMAILS)
      .query(true)
      .reply(200, fixture('analyzed-emails'))
      .post(`${EMAILS}/remediate`)
      .reply(202, '', { Location: ACTION_CENTER })
      .get(`${EMAILS}/${BEA_EMAIL}`)
      .reply(404, fixture('graph-error-404'));

    const { outcome } = await carryOut(
      executor(),
      executingAction('softDeleteEmails', { networkMessageId: IDS.networkMessageId, recipient: IDS.bea }),
      fakeContext().context,
    );

    expect(!outcome.ok && outcome.reason).toMatch(
      /^soft delete of 1 email\(s\) failed: .*404.*see Action center: /,
    );
  });

  it('fails after the bounded wait with the Action center link, and waits out a 429 meanwhile', async () => {
    const throttled = graph()
      .get(EMAILS)
      .query(true)
      .reply(200, fixture('analyzed-emails'))
      .post(`${EMAILS}/remediate`)
      .reply(202, '', { Location: ACTION_CENTER })
      .get(`${EMAILS}/${BEA_EMAIL}`)
      .reply(429, fixture('graph-error-429'), { 'Retry-After': '30' });
    let reads = 0;
    graph()
      .persist()
      .get(`${EMAILS}/${BEA_EMAIL}`)
      .reply(() => {
        reads++;
        return [200, analyzedEmail(BEA_EMAIL, 'inbox_folder')];
      });
    const ex = executor({ maxPollMs: 60_000 });
    const start = time.now();

    const { outcome } = await carryOut(
      ex,
      executingAction('softDeleteEmails', { networkMessageId: IDS.networkMessageId, recipient: IDS.bea }),
      fakeContext().context,
    );

    expect(outcome).toEqual({
      ok: false,
      reason: `soft delete of 1 email(s) not confirmed by Defender after 1 min (0 of 1 in deleted items); follow it in Action center: ${ACTION_CENTER}`,
    });
    expect(time.now() - start).toBe(60_000);
    expect(throttled.isDone()).toBe(true);
    // Rounds every 5 s: the first one throttled (30 s), then 35 s … 60 s.
    expect(reads).toBe(6);
  });

  it('names the approver UPN in the remediation when the approver is known by one', async () => {
    let remediation: Record<string, unknown> = {};
    graph()
      .get('/msgraph/beta/security/collaboration/analyzedEmails')
      .query(true)
      .reply(200, fixture('analyzed-emails'))
      .post('/msgraph/beta/security/collaboration/analyzedEmails/remediate', (b) => {
        remediation = b;
        return true;
      })
      .reply(202, '', { Location: 'https://security.microsoft.com/action-center/history' });
    deliveries(BEA_EMAIL, 'deletedFolder');
    deliveries(ALEX_EMAIL, 'deletedFolder');
    const { context } = fakeContext(incidentRecord(), { approvedBy: 'api:soc-lead@contoso.com' });

    await carryOut(
      executor(),
      executingAction('softDeleteEmails', { networkMessageId: IDS.networkMessageId }),
      context,
    );

    expect(remediation.approverUpn).toBe('soc-lead@contoso.com');
    expect(remediation.analyzedEmails).toHaveLength(2);
  });

  it('does not repeat a remediation Graph may have taken (503), and says where to check', async () => {
    let posts = 0;
    graph()
      .get('/msgraph/beta/security/collaboration/analyzedEmails')
      .query(true)
      .reply(200, fixture('analyzed-emails'))
      .post('/msgraph/beta/security/collaboration/analyzedEmails/remediate')
      .times(4)
      .reply(() => {
        posts++;
        return [503, fixture('graph-error-503')];
      });

    const { outcome } = await carryOut(
      executor(),
      executingAction('softDeleteEmails', { networkMessageId: IDS.networkMessageId, recipient: IDS.bea }),
      fakeContext().context,
    );

    expect(posts).toBe(1);
    expect(!outcome.ok && outcome.reason).toMatch(/503.*may still have been accepted: check Action center/);
  });

  it('fails without remediating when no analyzed email matches', async () => {
    graph().get('/msgraph/beta/security/collaboration/analyzedEmails').query(true).reply(200, { value: [] });

    const { outcome } = await carryOut(
      executor(),
      executingAction('softDeleteEmails', { networkMessageId: IDS.networkMessageId, recipient: IDS.bea }),
      fakeContext().context,
    );

    expect(outcome).toEqual({
      ok: false,
      reason: `no analyzed email with network message id ${IDS.networkMessageId} for ${IDS.bea} in the last 30 days, so nothing was deleted`,
    });
  });

  it('names SecurityAnalyzedMessage.ReadWrite.All when the email search is forbidden', async () => {
    graph()
      .get('/msgraph/beta/security/collaboration/analyzedEmails')
      .query(true)
      .reply(403, fixture('graph-error-403'));

    const { outcome } = await carryOut(
      executor(),
      executingAction('softDeleteEmails', { networkMessageId: IDS.networkMessageId }),
      fakeContext().context,
    );

    expect(!outcome.ok && outcome.reason).toMatch(/403 Forbidden.*SecurityAnalyzedMessage\.ReadWrite\.All/);
  });
});

describe('DefenderExecutor: sign-in and restarts', () => {
  it('fails with a readable reason, free of the secret, when the app cannot sign in', async () => {
    nock.cleanAll();
    nockLogin({
      status: 401,
      body: {
        error: 'invalid_client',
        error_description: 'AADSTS7000215: Invalid client secret provided.',
        error_codes: [7000215],
      },
    });

    const { outcome } = await carryOut(
      executor(),
      executingAction('isolateDevice', { deviceId: IDS.machineId }),
      fakeContext().context,
    );

    expect(outcome.ok).toBe(false);
    expect(!outcome.ok && outcome.reason).toMatch(
      /^could not get an access token for Defender: .*AADSTS7000215/,
    );
    expect(!outcome.ok && outcome.reason).not.toContain('test-secret-value');
  });

  it('does not submit a soft delete twice after a restart, and follows the one sent', async () => {
    const asked = deliveries(BEA_EMAIL, 'deletedFolder');
    const { context, checkpoints } = fakeContext(incidentRecord(), { resume: true });

    const { outcome, sent } = await carryOut(
      executor(),
      executingAction(
        'softDeleteEmails',
        { networkMessageId: IDS.networkMessageId, recipient: IDS.bea },
        {
          externalId: ACTION_CENTER,
          remoteItems: [BEA_EMAIL],
          remoteStatus: 'submitted',
          progress: 'Soft delete submitted: 0 of 1 email(s) in deleted items',
          submittedAt: '2025-03-14T09:09:40.000Z',
        },
      ),
      context,
    );

    expect(sent).toMatchObject({ kind: 'submitted', externalId: ACTION_CENTER, items: [BEA_EMAIL] });
    expect(checkpoints).toEqual([]);
    expect(asked.count).toBe(1);
    expect(outcome.ok).toBe(true);
  });
});

describe('DefenderExecutor: release from quarantine', () => {
  it('calls nothing and says there is no API', async () => {
    const { outcome } = await carryOut(
      executor(),
      executingAction('releaseFileFromQuarantine', { deviceId: IDS.machineId, sha1: IDS.sha1 }),
      fakeContext().context,
    );

    expect(outcome).toEqual({
      ok: false,
      reason:
        'Defender has no API to release a file from quarantine: an expert does it by hand and marks it done. Open the Microsoft Defender portal: Action center > History. Find the quarantine action for the file on the device and choose Undo. If a custom indicator blocked it, on the device as administrator run "MpCmdRun.exe -Restore -Name EUS:Win32/CustomEnterpriseBlock -All". Warning: that command restores every file a custom indicator blocked on the device in the last 30 days, not only this one.',
    });
    expect(tokenRequests).toEqual([]);
  });
});

describe('URLs, scopes and Retry-After', () => {
  it('appends paths to a base URL, keeping its prefix', () => {
    expect(joinUrl('https://127.0.0.1:9000/defender', '/api/machines/x')).toBe(
      'https://127.0.0.1:9000/defender/api/machines/x',
    );
    expect(joinUrl('https://127.0.0.1:9000/defender/', 'api/x', { $filter: "a eq 'b c'" })).toBe(
      "https://127.0.0.1:9000/defender/api/x?$filter=a%20eq%20'b%20c'",
    );
    expect(joinUrl('https://graph.microsoft.com', '/v1.0/users/u')).toBe(
      'https://graph.microsoft.com/v1.0/users/u',
    );
  });

  it('maps each API host to its token scope', () => {
    expect(scopeFor('https://api.security.microsoft.com')).toBe(
      'https://api.securitycenter.microsoft.com/.default',
    );
    expect(scopeFor('https://eu.api.security.microsoft.com/')).toBe(
      'https://api.securitycenter.microsoft.com/.default',
    );
    expect(scopeFor('https://api.securitycenter.microsoft.com')).toBe(
      'https://api.securitycenter.microsoft.com/.default',
    );
    expect(scopeFor('https://api-gov.security.microsoft.us')).toBe(
      'https://api-gov.securitycenter.microsoft.us/.default',
    );
    expect(scopeFor('https://graph.microsoft.com')).toBe('https://graph.microsoft.com/.default');
    expect(scopeFor('https://graph.microsoft.us/v1')).toBe('https://graph.microsoft.us/.default');
    expect(scopeFor('https://127.0.0.1:9000/defender')).toBe('https://127.0.0.1:9000/.default');
  });

  it('uses a client secret when one is configured, else managed or workload identity', () => {
    expect(createAzureCredential({ tenantId: 't', clientId: 'c', clientSecret: 's' })).toBeInstanceOf(
      ClientSecretCredential,
    );
    expect(createAzureCredential({ tenantId: 't', clientId: 'c' })).toBeInstanceOf(DefaultAzureCredential);
    expect(() => createAzureCredential({ clientSecret: 's' })).toThrow(
      /DEFENDER_TENANT_ID and DEFENDER_CLIENT_ID/,
    );
  });

  it('reads Retry-After as seconds or as a date', () => {
    const now = Date.parse('2025-03-14T09:00:00Z');
    expect(retryAfterMs(new Headers({ 'Retry-After': '30' }), now)).toBe(30_000);
    expect(retryAfterMs(new Headers({ 'Retry-After': 'Fri, 14 Mar 2025 09:00:05 GMT' }), now)).toBe(5_000);
    expect(retryAfterMs(new Headers(), now)).toBeUndefined();
  });
});
