import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DefenderAssetDirectory } from '../../adapters/defender-directory.js';
import { DefenderExecutor } from '../../adapters/defender-executor.js';
import { approveAction } from '../../core/approve-action.js';
import { executeAction } from '../../core/execute-action.js';
import { ingestIncident } from '../../core/ingest-incident.js';
import type { Exclusions } from '../../core/model.js';
import {
  fakeTime,
  fixture,
  GRAPH_ORIGIN,
  GRAPH_TOKEN,
  GRAPH_URL,
  IDS,
  MDE_ORIGIN,
  MDE_TOKEN,
  MDE_URL,
  nockLogin,
  testCredential,
} from '../integration/defender-helpers.js';
import { coreHarness, EXPERT, type Harness } from '../support/core-harness.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';

// Issue 10: decisions read live facts (point 2) about one user with every identifier, and the device as
// Defender reports it (point 3). Graph and Defender are faked with nock; the core runs for real.

const INGEST = { id: 'api:ingest', platform: 'api' } as const;
const ACTION = { incidentId: IDS.incidentId, actionId: 'act-9' };
const USER_FIELDS = { $select: 'id,userPrincipalName,mail,proxyAddresses,onPremisesSyncEnabled' };
const EXECUTIVES = '7c4e1a9b-3d5f-4b28-a6e0-1d8f3b5c7a92';

const graph = () => nock(GRAPH_ORIGIN, { reqheaders: { authorization: `Bearer ${GRAPH_TOKEN}` } });
const mde = () => nock(MDE_ORIGIN, { reqheaders: { authorization: `Bearer ${MDE_TOKEN}` } });

let h: Harness;

/** The core on the live Defender/Graph directory, with `exclusions` as the policy's. */
function harness(exclusions: Exclusions): Harness {
  const time = fakeTime();
  const directory = new DefenderAssetDirectory({
    credential: testCredential(),
    defenderApiUrl: MDE_URL,
    graphApiUrl: GRAPH_URL,
    sleep: time.sleep,
    now: time.now,
  });
  return coreHarness({ directory, policy: { exclusions } });
}

/** Ingest the sample incident with one proposed action, `act-9`, aimed at `target`. */
async function ingestWith(type: string, target: Record<string, string>) {
  const body = sampleIngestBody(shippedSample());
  body.managedResponse.actions = [{ id: 'act-9', type, status: 'proposed', target }];
  return ingestIncident(h.deps, body, INGEST);
}

const state = async () => (await h.store.getAction(IDS.incidentId, 'act-9'))?.state;
const executeJobs = () => h.jobs.jobs.filter((j) => j.kind === 'execute');

function nockUser(ref: string, body: Record<string, unknown>, times: number) {
  graph()
    .get(`/msgraph/v1.0/users/${encodeURIComponent(ref)}`)
    .query(USER_FIELDS)
    .times(times)
    .reply(200, body);
}

beforeAll(() => {
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
});

afterAll(() => {
  nock.enableNetConnect();
});

beforeEach(() => {
  nockLogin();
});

afterEach(() => {
  nock.cleanAll();
});

describe('point 2: decisions read membership live, never a cache', () => {
  beforeEach(() => {
    h = harness({ devices: [], users: [{ group: 'Executives' }] });
    graph()
      .get('/msgraph/v1.0/groups')
      .query({ $filter: "displayName eq 'Executives'", $select: 'id,displayName' })
      .reply(200, fixture('graph-groups-by-name'));
  });

  it('refuses at approval a user added to an excluded group after the card was posted', async () => {
    nockUser(IDS.userId, fixture('graph-user'), 2);
    const check = `/msgraph/v1.0/users/${IDS.userId}/checkMemberGroups`;
    graph()
      .post(check, { groupIds: [EXECUTIVES] })
      .reply(200, fixture('graph-check-member-groups', { value: [] }));
    graph()
      .post(check, { groupIds: [EXECUTIVES] })
      .reply(200, fixture('graph-check-member-groups'));

    await ingestWith('disableUser', { userId: IDS.userId, upn: IDS.upn });
    expect(await state()).toBe('proposed');
    const decision = await approveAction(h.deps, ACTION, EXPERT);

    expect(decision).toMatchObject({ ok: false, code: 'asset_excluded' });
    expect(await state()).toBe('customerPending');
    expect(executeJobs()).toEqual([]);
    expect(nock.pendingMocks()).toEqual([]);
  });

  it('refuses at execution a user added to an excluded group after the approval', async () => {
    nockUser(IDS.userId, fixture('graph-user'), 3);
    const check = `/msgraph/v1.0/users/${IDS.userId}/checkMemberGroups`;
    const notMember = fixture('graph-check-member-groups', { value: [] });
    graph()
      .post(check, { groupIds: [EXECUTIVES] })
      .times(2)
      .reply(200, notMember);
    graph()
      .post(check, { groupIds: [EXECUTIVES] })
      .reply(200, fixture('graph-check-member-groups'));

    await ingestWith('revokeUserTokens', { userId: IDS.userId });
    expect(await approveAction(h.deps, ACTION, EXPERT)).toMatchObject({ ok: true });
    const [job] = executeJobs();
    await executeAction(h.deps, { incidentId: ACTION.incidentId, actionId: job!.actionId });

    expect(await state()).toBe('customerPending');
    expect(h.executor.records).toEqual([]);
  });

  it('reads device facts live: a device tagged in Defender after ingest is refused', async () => {
    h = harness({ devices: [{ tag: 'VIP' }], users: [] });
    mde()
      .get(`/prefix/api/machines/${IDS.serverId}`)
      .reply(200, fixture('machine', { machineTags: [] }))
      .get(`/prefix/api/machines/${IDS.serverId}`)
      .reply(200, fixture('machine', { machineTags: ['VIP'] }));

    await ingestWith('isolateDevice', { deviceId: IDS.serverId, deviceName: IDS.server });
    expect(await state()).toBe('proposed');
    const decision = await approveAction(h.deps, ACTION, EXPERT);

    expect(decision).toMatchObject({ ok: false, code: 'asset_excluded' });
    expect(await state()).toBe('customerPending');
  });
});

describe('point 3: one user, every identifier; the device as Defender reports it', () => {
  it('applies a upn rule naming an alias to a target named by object id only', async () => {
    h = harness({ devices: [], users: [{ upn: 'a.vance@contoso.com' }] });
    nockUser(IDS.userId, fixture('graph-user'), 1);

    const ingested = await ingestWith('disableUser', { userId: IDS.userId });

    expect(ingested.state.actions[0]).toMatchObject({
      state: 'customerPending',
      excludedBy: 'user a.vance@contoso.com',
    });
  });

  it('applies an id rule to a target named by UPN only', async () => {
    const nina = { id: '3b8e5c1a-7d2f-4a9e-b0c6-8f1d3e5a7c29', upn: 'nina.petrova@contoso.com' };
    h = harness({ devices: [], users: [{ id: nina.id }] });
    nockUser(
      nina.upn,
      fixture('graph-user', {
        id: nina.id,
        userPrincipalName: nina.upn,
        mail: nina.upn,
        proxyAddresses: [`SMTP:${nina.upn}`],
      }),
      1,
    );

    const ingested = await ingestWith('forcePasswordReset', { upn: nina.upn });

    expect(ingested.state.actions[0]).toMatchObject({
      state: 'customerPending',
      excludedBy: `user id ${nina.id}`,
    });
  });

  it('acts only on the object id the check resolved, not on the name the body carried', async () => {
    h = harness({ devices: [], users: [{ upn: IDS.bea }] });
    h.deps.executor = new DefenderExecutor({
      credential: testCredential(),
      defenderApiUrl: MDE_URL,
      graphApiUrl: GRAPH_URL,
      sleep: fakeTime().sleep,
    });
    nockUser('a.vance@contoso.com', fixture('graph-user'), 3);
    // Whether the user is synced from on-premises is read of the resolved id too, before the PATCH.
    const synced = graph()
      .get(`/msgraph/v1.0/users/${IDS.userId}`)
      .query({ $select: 'id,onPremisesSyncEnabled,onPremisesSecurityIdentifier' })
      .reply(200, { id: IDS.userId, onPremisesSyncEnabled: null, onPremisesSecurityIdentifier: null });
    const disabled = graph().patch(`/msgraph/v1.0/users/${IDS.userId}`, { accountEnabled: false }).reply(204);

    await ingestWith('disableUser', { upn: 'a.vance@contoso.com' });
    expect(await approveAction(h.deps, ACTION, EXPERT)).toMatchObject({ ok: true });
    const result = await executeAction(h.deps, ACTION);

    expect(result).toMatchObject({ status: 'done', action: { state: 'succeeded' } });
    expect((await h.store.getAction(IDS.incidentId, 'act-9'))?.resolved).toEqual({ userId: IDS.userId });
    expect(synced.isDone() && disabled.isDone()).toBe(true);
    expect(nock.pendingMocks()).toEqual([]);
  });

  it("never acts on one person's id under another person's UPN", async () => {
    h = harness({ devices: [], users: [{ upn: IDS.upn }] });
    nockUser(IDS.userId, fixture('graph-user'), 2);

    await ingestWith('disableUser', { userId: IDS.userId, upn: IDS.bea });
    const decision = await approveAction(h.deps, ACTION, EXPERT);

    expect(decision).toMatchObject({ ok: false, code: 'exclusion_unverifiable' });
    expect(decision.ok === false && decision.message).toContain('they name two different users');
    expect(await state()).toBe('proposed');
    expect(executeJobs()).toEqual([]);
  });

  it("applies the mailbox owner's rules to a soft-delete sent to an alias", async () => {
    h = harness({ devices: [], users: [{ upn: IDS.bea }] });
    graph()
      .get('/msgraph/v1.0/users')
      .query({
        $filter:
          "userPrincipalName eq 'finance-desk@contoso.com' or mail eq 'finance-desk@contoso.com' or proxyAddresses/any(p:p eq 'smtp:finance-desk@contoso.com')",
        $select: USER_FIELDS.$select,
      })
      .reply(200, fixture('graph-users-by-address'));

    const ingested = await ingestWith('softDeleteEmails', {
      networkMessageId: IDS.networkMessageId,
      recipient: 'finance-desk@contoso.com',
    });

    expect(ingested.state.actions[0]).toMatchObject({
      state: 'customerPending',
      excludedBy: `user ${IDS.bea}`,
    });
  });

  it('fails closed on a device name rule when Defender cannot be read, whatever name the body carries', async () => {
    h = harness({ devices: [{ name: 'dc01.corp.contoso.com' }], users: [] });
    mde()
      .get(`/prefix/api/machines/${IDS.serverId}`)
      .times(8)
      .reply(503, fixture('error-service-unavailable'));

    await ingestWith('isolateDevice', { deviceId: IDS.serverId, deviceName: IDS.server });
    const decision = await approveAction(h.deps, ACTION, EXPERT);

    expect(decision).toMatchObject({ ok: false, code: 'exclusion_unverifiable' });
    expect(await state()).toBe('proposed');
    expect(executeJobs()).toEqual([]);
  });
});
