import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DefenderAssetDirectory } from '../../adapters/defender-directory.js';
import { AssetLookupError } from '../../core/errors.js';
import { evaluateExclusion } from '../../core/exclusions.js';
import type { Exclusions } from '../../core/model.js';
import type { AssetDirectory } from '../../core/ports.js';
import {
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
  testCredential,
} from './defender-helpers.js';

const USER_FIELDS = { $select: 'id,userPrincipalName,mail,proxyAddresses,onPremisesSyncEnabled' };
const EXECUTIVES = '7c4e1a9b-3d5f-4b28-a6e0-1d8f3b5c7a92';
const BEA_ID = 'e6b2d8f4-1a3c-4e5f-9b7d-0c2a4e6f8b1d';

let time: ReturnType<typeof fakeTime>;

function directory(overrides: Partial<ConstructorParameters<typeof DefenderAssetDirectory>[0]> = {}) {
  return new DefenderAssetDirectory({
    credential: testCredential(),
    defenderApiUrl: MDE_URL,
    graphApiUrl: GRAPH_URL,
    sleep: time.sleep,
    now: time.now,
    ...overrides,
  });
}

const mde = () => nock(MDE_ORIGIN, { reqheaders: { authorization: `Bearer ${MDE_TOKEN}` } });
const graph = () => nock(GRAPH_ORIGIN, { reqheaders: { authorization: `Bearer ${GRAPH_TOKEN}` } });

/** `GET /v1.0/users/{id or upn}` answering Alex (object id, UPN, mail and two aliases). */
function nockUser(ref: string, times = 1) {
  return graph()
    .get(`/msgraph/v1.0/users/${encodeURIComponent(ref)}`)
    .query(USER_FIELDS)
    .times(times)
    .reply(200, fixture('graph-user'));
}

/** `GET /v1.0/groups?$filter=displayName eq '<literal>'` (the literal as OData quotes it). */
function nockGroupNamed(
  literal: string,
  {
    times = 1,
    body = fixture('graph-groups-by-name'),
  }: { times?: number; body?: Record<string, unknown> } = {},
) {
  return graph()
    .get('/msgraph/v1.0/groups')
    .query({ $filter: `displayName eq '${literal}'`, $select: 'id,displayName' })
    .times(times)
    .reply(200, body);
}

/** `POST /v1.0/users/{Alex}/checkMemberGroups` for exactly `groupIds`, answering `member`. */
function nockCheck(groupIds: string[], member: string[], times = 1) {
  return graph()
    .post(`/msgraph/v1.0/users/${IDS.userId}/checkMemberGroups`, { groupIds })
    .times(times)
    .reply(200, fixture('graph-check-member-groups', { value: member }));
}

const userAction = { type: 'disableUser' as const, target: { userId: IDS.userId, upn: IDS.upn } };
const deviceAction = { type: 'isolateDevice' as const, target: { deviceId: IDS.serverId } };
const excludeUsers = (group: string): Exclusions => ({ devices: [], users: [{ group }] });

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

describe('DefenderAssetDirectory: devices', () => {
  it('reads device group, tags and name from Defender at decision time', async () => {
    const api = mde().get(`/prefix/api/machines/${IDS.serverId}`).reply(200, fixture('machine'));

    const facts = await directory().deviceFacts({ deviceId: IDS.serverId });

    expect(facts).toEqual({
      id: IDS.serverId,
      dnsName: IDS.server,
      group: 'Domain Controllers',
      tags: ['Finance', 'VIP'],
    });
    expect(api.isDone()).toBe(true);
  });

  it('excludes a device whose Defender group changed after ingest', async () => {
    mde().get(`/prefix/api/machines/${IDS.serverId}`).reply(200, fixture('machine'));
    const incident = incidentRecord();
    expect(incident.devices.find((d) => d.id === IDS.serverId)?.group).toBe('Finance Servers');

    const decision = await evaluateExclusion(
      { devices: [{ group: 'Domain Controllers' }], users: [] },
      deviceAction,
      incident,
      directory(),
    );

    expect(decision).toEqual({
      kind: 'excluded',
      rule: 'device group Domain Controllers',
      asset: IDS.server,
    });
  });

  it('excludes a device by a tag added in Defender', async () => {
    mde().get(`/prefix/api/machines/${IDS.serverId}`).reply(200, fixture('machine'));

    const decision = await evaluateExclusion(
      { devices: [{ tag: 'vip' }], users: [] },
      deviceAction,
      incidentRecord(),
      directory(),
    );

    expect(decision.kind).toBe('excluded');
  });

  it('fails closed when Defender cannot be read, rather than trust the evidence', async () => {
    mde()
      .get(`/prefix/api/machines/${IDS.serverId}`)
      .times(4)
      .reply(503, fixture('error-service-unavailable'));

    const decision = await evaluateExclusion(
      { devices: [{ group: 'Domain Controllers' }], users: [] },
      deviceAction,
      incidentRecord(),
      directory(),
    );

    expect(decision).toEqual({
      kind: 'unverifiable',
      asset: IDS.server,
      reason: `could not verify the name, group and tags of ${IDS.server} (Defender answered 503 to GET machine after 4 attempts (ServiceUnavailable: The service is temporarily unavailable.)), so the exclusion policy cannot be checked`,
    });
  });

  it('throws AssetLookupError naming Machine.Read.All on 403', async () => {
    mde().get(`/prefix/api/machines/${IDS.serverId}`).reply(403, fixture('error-forbidden'));

    const lookup = directory().deviceFacts({ deviceId: IDS.serverId });

    await expect(lookup).rejects.toBeInstanceOf(AssetLookupError);
    await expect(lookup).rejects.toThrow(/403 Forbidden.*Machine\.Read\.All/);
  });

  it('looks a device named without an id up by DNS name in Defender, not through the evidence', async () => {
    const api = mde()
      .get('/prefix/api/machines')
      .query({ $filter: "computerDnsName eq 'fin-app-07.corp.contoso.com'" })
      .reply(200, { value: [fixture('machine')] });

    const port: AssetDirectory = directory();

    const facts = await port.deviceFacts({ deviceName: 'FIN-APP-07.corp.contoso.com' }, incidentRecord());

    expect(facts).toMatchObject({ id: IDS.serverId, group: 'Domain Controllers' });
    expect(api.isDone()).toBe(true);
  });

  it('fails closed when two Defender devices have the name', async () => {
    mde()
      .get('/prefix/api/machines')
      .query({ $filter: "computerDnsName eq 'fin-app-07.corp.contoso.com'" })
      .reply(200, { value: [fixture('machine'), fixture('machine', { id: 'f'.repeat(40) })] });

    const decision = await evaluateExclusion(
      { devices: [{ tag: 'Finance' }], users: [] },
      { type: 'isolateDevice', target: { deviceName: IDS.server } },
      incidentRecord(),
      directory(),
    );

    expect(decision).toMatchObject({ kind: 'unverifiable' });
    expect(decision.kind === 'unverifiable' && decision.reason).toContain(
      `more than one Defender device is named ${IDS.server}`,
    );
  });

  it('asks Defender even when only id rules exist, and returns the Defender id to act on', async () => {
    const api = mde().get(`/prefix/api/machines/${IDS.serverId}`).reply(200, fixture('machine'));

    const decision = await evaluateExclusion(
      { devices: [{ id: IDS.machineId }], users: [] },
      deviceAction,
      incidentRecord(),
      directory(),
    );

    expect(decision).toEqual({ kind: 'allowed', subject: { deviceId: IDS.serverId } });
    expect(api.isDone()).toBe(true);
  });

  it('fails closed when the name in the action is not the name Defender has for that id', async () => {
    mde().get(`/prefix/api/machines/${IDS.serverId}`).reply(200, fixture('machine'));

    const decision = await evaluateExclusion(
      { devices: [{ name: IDS.server }], users: [] },
      { type: 'isolateDevice', target: { deviceId: IDS.serverId, deviceName: IDS.machineName } },
      incidentRecord(),
      directory(),
    );

    expect(decision).toEqual({
      kind: 'unverifiable',
      asset: IDS.server,
      reason: `the action names device ${IDS.machineName}, but Defender knows ${IDS.serverId} as ${IDS.server}: they are two different devices, so the exclusion policy cannot be checked`,
    });
  });

  it('accepts the short host name of the device Defender reports', async () => {
    mde().get(`/prefix/api/machines/${IDS.serverId}`).reply(200, fixture('machine'));

    const decision = await evaluateExclusion(
      { devices: [{ tag: 'Tier0' }], users: [] },
      { type: 'isolateDevice', target: { deviceId: IDS.serverId, deviceName: 'FIN-APP-07' } },
      incidentRecord(),
      directory(),
    );

    expect(decision).toEqual({ kind: 'allowed', subject: { deviceId: IDS.serverId } });
  });
});

describe('DefenderAssetDirectory: users', () => {
  it('resolves a user with every identifier Graph has for it', async () => {
    nockUser(IDS.userId);

    const user = await directory().resolveUser({ userId: IDS.userId });

    expect(user).toEqual({
      id: IDS.userId,
      userPrincipalName: IDS.upn,
      mail: 'Alex.Vance@contoso.com',
      proxyAddresses: [
        'SMTP:Alex.Vance@contoso.com',
        'smtp:a.vance@contoso.com',
        'smtp:alex.vance@contoso.onmicrosoft.com',
      ],
    });
  });

  it('matches a upn rule against an alias of a user the action names by object id only', async () => {
    nockUser(IDS.userId);

    const decision = await evaluateExclusion(
      { devices: [], users: [{ upn: 'A.Vance@contoso.com' }] },
      { type: 'disableUser', target: { userId: IDS.userId } },
      incidentRecord(),
      directory(),
    );

    expect(decision).toEqual({ kind: 'excluded', rule: 'user A.Vance@contoso.com', asset: IDS.upn });
  });

  it('matches an id rule against a user the action names by UPN only', async () => {
    nockUser(IDS.upn);

    const decision = await evaluateExclusion(
      { devices: [], users: [{ id: IDS.userId.toUpperCase() }] },
      { type: 'revokeUserTokens', target: { upn: IDS.upn } },
      incidentRecord({ users: [] }),
      directory(),
    );

    expect(decision).toMatchObject({ kind: 'excluded', rule: `user id ${IDS.userId.toUpperCase()}` });
  });

  it('accepts an id and a UPN that are the same user, and returns the object id to act on', async () => {
    nockUser(IDS.userId);

    const decision = await evaluateExclusion(
      { devices: [], users: [{ upn: 'ceo@contoso.com' }] },
      { type: 'disableUser', target: { userId: IDS.userId, upn: 'a.vance@contoso.com' } },
      incidentRecord(),
      directory(),
    );

    expect(decision).toEqual({ kind: 'allowed', subject: { userId: IDS.userId } });
  });

  it('fails closed when the object id and the UPN name two different users', async () => {
    nockUser(IDS.userId);

    const decision = await evaluateExclusion(
      { devices: [], users: [{ upn: 'ceo@contoso.com' }] },
      { type: 'disableUser', target: { userId: IDS.userId, upn: IDS.bea } },
      incidentRecord(),
      directory(),
    );

    expect(decision).toEqual({
      kind: 'unverifiable',
      asset: IDS.bea,
      reason: `the action names ${IDS.bea} and user id ${IDS.userId}, which is ${IDS.upn}: they name two different users, so the exclusion policy cannot be checked`,
    });
  });

  it('fails closed when Graph does not know the user', async () => {
    graph()
      .get(`/msgraph/v1.0/users/${encodeURIComponent('nobody@contoso.com')}`)
      .query(USER_FIELDS)
      .reply(404, fixture('graph-error-404'));

    const decision = await evaluateExclusion(
      { devices: [], users: [{ upn: 'ceo@contoso.com' }] },
      { type: 'disableUser', target: { upn: 'nobody@contoso.com' } },
      incidentRecord(),
      directory(),
    );

    expect(decision).toMatchObject({ kind: 'unverifiable', asset: 'nobody@contoso.com' });
    expect(decision.kind === 'unverifiable' && decision.reason).toContain(
      'user nobody@contoso.com was not found in Microsoft Entra ID (Microsoft Graph answered 404 to GET user)',
    );
  });

  it('asks Graph for membership at every decision: a user added to the group since is refused', async () => {
    nockUser(IDS.userId, 2);
    const lookup = nockGroupNamed('Executives');
    nockCheck([EXECUTIVES], []);
    nockCheck([EXECUTIVES], [EXECUTIVES]);
    const dir = directory();

    const before = await evaluateExclusion(excludeUsers('Executives'), userAction, incidentRecord(), dir);
    const after = await evaluateExclusion(excludeUsers('Executives'), userAction, incidentRecord(), dir);

    expect(before).toEqual({ kind: 'allowed', subject: { userId: IDS.userId } });
    expect(after).toEqual({ kind: 'excluded', rule: 'user group Executives', asset: IDS.upn });
    expect(lookup.isDone()).toBe(true);
    expect(nock.pendingMocks()).toEqual([]);
  });

  it('looks a group name up again once its id is five minutes old', async () => {
    const lookups = nockGroupNamed('Executives', { times: 2 });
    nockCheck([EXECUTIVES], [], 3);
    const dir = directory();
    const user = { id: IDS.userId, userPrincipalName: IDS.upn, proxyAddresses: [] };

    await dir.memberOfGroups(user, ['Executives']);
    await time.sleep(4 * 60_000);
    await dir.memberOfGroups(user, ['executives']);
    expect(nock.pendingMocks()).toHaveLength(2);
    await time.sleep(60_000);
    await dir.memberOfGroups(user, ['Executives']);

    expect(lookups.isDone()).toBe(true);
  });

  it('uses a group rule that is an object id as is, and asks for 20 groups a call at most', async () => {
    const ids = Array.from(
      { length: 21 },
      (_, i) => `00000000-0000-4000-8000-0000000000${String(i).padStart(2, '0')}`,
    );
    nockCheck(ids.slice(0, 20), [ids[3]!]);
    nockCheck(ids.slice(20), [ids[20]!]);

    const member = await directory().memberOfGroups(
      { id: IDS.userId, userPrincipalName: IDS.upn, proxyAddresses: [] },
      ids,
    );

    expect(member).toEqual([ids[3], ids[20]]);
    expect(nock.pendingMocks()).toEqual([]);
  });

  it('fails closed, naming the rule, when a group name matches no group', async () => {
    nockUser(IDS.userId);
    nockGroupNamed('Executive', { body: fixture('graph-groups-by-name', { value: [] }) });

    const decision = await evaluateExclusion(
      excludeUsers('Executive'),
      userAction,
      incidentRecord(),
      directory(),
    );

    expect(decision).toMatchObject({ kind: 'unverifiable', asset: IDS.upn });
    expect(decision.kind === 'unverifiable' && decision.reason).toContain(
      'the user group rule "Executive" names no group in Microsoft Entra ID',
    );
  });

  it('fails closed, naming the rule, when a group name matches several groups', async () => {
    nockUser(IDS.userId);
    nockGroupNamed("Finance''s Team", {
      body: fixture('graph-groups-by-name', {
        value: [
          { id: '0b7d2e4f-9a1c-4e36-8d5b-2f7a1c9e4b08', displayName: "Finance's Team" },
          { id: '9d3a7f1e-5c2b-4e8d-b6a0-3f1e9c7d5b24', displayName: "finance's team" },
        ],
      }),
    });

    const decision = await evaluateExclusion(
      excludeUsers("Finance's Team"),
      userAction,
      incidentRecord(),
      directory(),
    );

    expect(decision.kind === 'unverifiable' && decision.reason).toContain(
      `the user group rule "Finance's Team" names 2 groups in Microsoft Entra ID; name the group by its object id instead`,
    );
  });

  it('fails closed with the reason when Graph answers 503 to checkMemberGroups', async () => {
    nockUser(IDS.userId);
    graph()
      .post(`/msgraph/v1.0/users/${IDS.userId}/checkMemberGroups`, { groupIds: [EXECUTIVES] })
      .times(4)
      .reply(503, fixture('graph-error-503'));

    const decision = await evaluateExclusion(
      excludeUsers(EXECUTIVES),
      userAction,
      incidentRecord(),
      directory(),
    );

    expect(decision).toEqual({
      kind: 'unverifiable',
      asset: IDS.upn,
      reason: `could not verify the group membership of ${IDS.upn} (Microsoft Graph answered 503 to POST checkMemberGroups after 4 attempts (serviceNotAvailable: The service is temporarily unavailable. Please try again later.)), so the exclusion policy cannot be checked`,
    });
    expect(time.waits).toEqual([1000, 2000, 4000]);
  });

  it('names GroupMember.Read.All when Graph refuses the membership check', async () => {
    graph()
      .post(`/msgraph/v1.0/users/${IDS.userId}/checkMemberGroups`, { groupIds: [EXECUTIVES] })
      .reply(403, fixture('graph-error-403'));

    const check = directory().memberOfGroups(
      { id: IDS.userId, userPrincipalName: IDS.upn, proxyAddresses: [] },
      [EXECUTIVES],
    );

    await expect(check).rejects.toBeInstanceOf(AssetLookupError);
    await expect(check).rejects.toThrow(/403 Forbidden.*GroupMember\.Read\.All/);
  });

  it("applies the mailbox owner's rules to a soft-delete sent to an alias", async () => {
    const api = graph()
      .get('/msgraph/v1.0/users')
      .query({
        $filter:
          "userPrincipalName eq 'finance-desk@contoso.com' or mail eq 'finance-desk@contoso.com' or proxyAddresses/any(p:p eq 'smtp:finance-desk@contoso.com')",
        $select: USER_FIELDS.$select,
      })
      .reply(200, fixture('graph-users-by-address'));

    const decision = await evaluateExclusion(
      { devices: [], users: [{ id: BEA_ID }] },
      {
        type: 'softDeleteEmails',
        target: { networkMessageId: IDS.networkMessageId, recipient: 'finance-desk@contoso.com' },
      },
      incidentRecord(),
      directory(),
    );

    expect(decision).toEqual({ kind: 'excluded', rule: `user id ${BEA_ID}`, asset: IDS.bea });
    expect(api.isDone()).toBe(true);
  });

  it('fails closed when no user, or more than one, has the recipient address', async () => {
    const addressQuery = (body: Record<string, unknown>) =>
      graph()
        .get('/msgraph/v1.0/users')
        .query((q) => String(q.$filter).includes("'smtp:all-staff@contoso.com'"))
        .reply(200, body);
    const softDelete = {
      type: 'softDeleteEmails' as const,
      target: { networkMessageId: IDS.networkMessageId, recipient: 'all-staff@contoso.com' },
    };
    const rules: Exclusions = { devices: [], users: [{ upn: 'ceo@contoso.com' }] };
    const owner = fixture<{ value: Record<string, unknown>[] }>('graph-users-by-address').value[0]!;

    addressQuery(fixture('graph-users-by-address', { value: [] }));
    const none = await evaluateExclusion(rules, softDelete, incidentRecord(), directory());
    addressQuery(fixture('graph-users-by-address', { value: [owner, { ...owner, id: IDS.userId }] }));
    const several = await evaluateExclusion(rules, softDelete, incidentRecord(), directory());

    expect(none.kind === 'unverifiable' && none.reason).toContain(
      'no user in Microsoft Entra ID has the address all-staff@contoso.com',
    );
    expect(several.kind === 'unverifiable' && several.reason).toContain(
      'more than one user in Microsoft Entra ID has the address all-staff@contoso.com',
    );
  });
});
