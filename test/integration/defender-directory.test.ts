import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DefenderAssetDirectory } from '../../adapters/defender-directory.js';
import { AssetLookupError } from '../../core/errors.js';
import { evaluateExclusion } from '../../core/exclusions.js';
import type { Exclusions } from '../../core/model.js';
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

const GROUPS = `/msgraph/v1.0/users/${IDS.userId}/transitiveMemberOf`;
const SELECT = { $select: 'id,displayName' };

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

/** The user's two pages of groups; the second is where "Executives" (joined after ingest) shows up. */
function nockGroupPages() {
  const page1 = fixture<{ '@odata.nextLink': string }>('user-groups-page-1');
  const next = new URL(page1['@odata.nextLink']);
  const nextPath = `/msgraph${next.pathname}`;
  page1['@odata.nextLink'] = `${GRAPH_ORIGIN}${nextPath}${next.search}`;
  return graph()
    .get(GROUPS)
    .query(SELECT)
    .reply(200, page1)
    .get(nextPath)
    .query({ $select: 'id,displayName', $skiptoken: 'RFNwdAIAAQAAAB8' })
    .reply(200, fixture('user-groups-page-2'));
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

    const facts = await directory().deviceFacts({ deviceId: IDS.serverId }, incidentRecord());

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
      reason: `could not verify the device group and tags of ${IDS.server} (Defender answered 503 to GET machine after 4 attempts (ServiceUnavailable: The service is temporarily unavailable.)), so the exclusion policy cannot be checked`,
    });
  });

  it('throws AssetLookupError naming Machine.Read.All on 403', async () => {
    mde().get(`/prefix/api/machines/${IDS.serverId}`).reply(403, fixture('error-forbidden'));

    const lookup = directory().deviceFacts({ deviceId: IDS.serverId }, incidentRecord());

    await expect(lookup).rejects.toBeInstanceOf(AssetLookupError);
    await expect(lookup).rejects.toThrow(/403 Forbidden.*Machine\.Read\.All/);
  });

  it('looks a device up by DNS name when neither the action nor the evidence has its id', async () => {
    mde()
      .get('/prefix/api/machines')
      .query({ $filter: "computerDnsName eq 'fin-app-07.corp.contoso.com'" })
      .reply(200, { value: [fixture('machine')] });

    const facts = await directory().deviceFacts(
      { deviceName: 'FIN-APP-07.corp.contoso.com' },
      incidentRecord({ devices: [] }),
    );

    expect(facts.group).toBe('Domain Controllers');
  });
});

describe('DefenderAssetDirectory: users', () => {
  it('refuses a user who joined an excluded group after ingest (transitive, second page)', async () => {
    const api = nockGroupPages();

    const decision = await evaluateExclusion(
      excludeUsers('Executives'),
      userAction,
      incidentRecord(),
      directory(),
    );

    expect(decision).toEqual({ kind: 'excluded', rule: 'user group Executives', asset: IDS.upn });
    expect(api.isDone()).toBe(true);
  });

  it('lists groups only (not directory roles) by id and name', async () => {
    nockGroupPages();

    const groups = await directory().userGroups({ userId: IDS.userId });

    expect(groups).toEqual({
      ids: ['0b7d2e4f-9a1c-4e36-8d5b-2f7a1c9e4b08', '7c4e1a9b-3d5f-4b28-a6e0-1d8f3b5c7a92'],
      names: ['All Staff', 'Executives'],
    });
  });

  it('fails closed with the reason when Graph answers 503', async () => {
    graph().get(GROUPS).query(SELECT).times(4).reply(503, fixture('graph-error-503'));

    const decision = await evaluateExclusion(
      excludeUsers('Executives'),
      userAction,
      incidentRecord(),
      directory(),
    );

    expect(decision).toEqual({
      kind: 'unverifiable',
      asset: IDS.upn,
      reason: `could not verify the group membership of ${IDS.upn} (Microsoft Graph answered 503 to GET transitiveMemberOf after 4 attempts (serviceNotAvailable: The service is temporarily unavailable. Please try again later.)), so the exclusion policy cannot be checked`,
    });
    expect(time.waits).toEqual([1000, 2000, 4000]);
  });

  it('names GroupMember.Read.All when Graph returns groups without names', async () => {
    graph()
      .get(GROUPS)
      .query(SELECT)
      .reply(200, { value: [{ '@odata.type': '#microsoft.graph.group', id: 'g-1', displayName: null }] });

    await expect(directory().userGroups({ userId: IDS.userId })).rejects.toThrow(/GroupMember\.Read\.All/);
  });

  it('does not follow a nextLink to another host with the token', async () => {
    graph()
      .get(GROUPS)
      .query(SELECT)
      .reply(200, { value: [], '@odata.nextLink': 'https://evil.test.local/v1.0/next' });

    await expect(directory().userGroups({ userId: IDS.userId })).rejects.toBeInstanceOf(AssetLookupError);
  });

  it('stops after the bounded number of pages and fails closed', async () => {
    graph()
      .get(GROUPS)
      .query(true)
      .times(3)
      .reply(200, {
        value: [],
        '@odata.nextLink': `${GRAPH_URL}/v1.0/users/${IDS.userId}/transitiveMemberOf?$skiptoken=x`,
      });

    await expect(directory({ maxGroupPages: 2 }).userGroups({ userId: IDS.userId })).rejects.toThrow(
      /more groups than 2 pages/,
    );
  });

  it('keeps a user’s groups for five minutes, then asks Graph again', async () => {
    let calls = 0;
    graph()
      .get(GROUPS)
      .query(SELECT)
      .times(2)
      .reply(() => {
        calls++;
        return [200, fixture('user-groups-page-2')];
      });
    const dir = directory();

    await dir.userGroups({ userId: IDS.userId });
    await time.sleep(4 * 60_000);
    await dir.userGroups({ userId: IDS.userId, upn: IDS.upn });
    expect(calls).toBe(1);
    await time.sleep(60_000);
    await dir.userGroups({ userId: IDS.userId });
    expect(calls).toBe(2);
  });

  it('addresses the user by UPN when the action has no object id', async () => {
    const api = graph()
      .get(`/msgraph/v1.0/users/${encodeURIComponent(IDS.bea)}/transitiveMemberOf`)
      .query(SELECT)
      .reply(200, fixture('user-groups-page-2'));

    const decision = await evaluateExclusion(
      excludeUsers('7c4e1a9b-3d5f-4b28-a6e0-1d8f3b5c7a92'),
      { type: 'softDeleteEmails', target: { networkMessageId: IDS.networkMessageId, recipient: IDS.bea } },
      incidentRecord(),
      directory(),
    );

    expect(decision.kind).toBe('excluded');
    expect(api.isDone()).toBe(true);
  });
});
