import { describe, expect, it } from 'vitest';
import { StaticAssetDirectory } from '../../../adapters/static-directory.js';
import { AssetLookupError } from '../../../core/errors.js';
import { evaluateExclusion } from '../../../core/exclusions.js';
import { parseIngestBody, toIncidentRecord } from '../../../core/incident.js';
import type { ActionRecord, Exclusions, IncidentRecord } from '../../../core/model.js';
import type { AssetDirectory } from '../../../core/ports.js';
import { sampleIngestBody, shippedSample } from '../../support/incident-factory.js';

const incident: IncidentRecord = toIncidentRecord(
  parseIngestBody(sampleIngestBody(shippedSample())),
  '2026-11-27T10:00:00Z',
);
const WKS = {
  deviceId: '4a1f9c2e7b3d8e06c5a2f1b9d7e3c8a0b6f2d4e1',
  deviceName: 'fin-wks-0142.corp.contoso.com',
};
const APP = { deviceId: '9e0d3b7c1a5f2e48d6c9b0a3f7e1d2c5b8a4f6e9' };
const ALEX = { userId: '5d9a0c3e-8f1b-4a7d-b2e6-9c4f1a8d3e70', upn: 'alex.vance@contoso.com' };

const isolate = (target: ActionRecord['target']) => ({ type: 'isolateDevice' as const, target });
const revoke = (target: ActionRecord['target']) => ({ type: 'revokeUserTokens' as const, target });
const ex = (e: Partial<Exclusions>): Exclusions => ({ devices: [], users: [], ...e });
const directory = new StaticAssetDirectory({ 'alex.vance@contoso.com': ['Executives'] });

const failing: AssetDirectory = {
  deviceFacts: async () => {
    throw new AssetLookupError('Defender answered 503');
  },
  resolveUser: async () => {
    throw new AssetLookupError('Microsoft Graph answered 503');
  },
  memberOfGroups: async () => {
    throw new AssetLookupError('Microsoft Graph answered 503');
  },
};

/** Users resolve from the evidence; only group membership cannot be read. */
const groupsDown: AssetDirectory = {
  deviceFacts: (device, i) => directory.deviceFacts(device, i),
  resolveUser: (user, i) => directory.resolveUser(user, i),
  memberOfGroups: failing.memberOfGroups,
};

describe('device exclusions', () => {
  it('matches a device by MDE id and names the rule', async () => {
    const d = await evaluateExclusion(
      ex({ devices: [{ id: WKS.deviceId }] }),
      isolate(WKS),
      incident,
      directory,
    );
    expect(d).toEqual({ kind: 'excluded', rule: `device id ${WKS.deviceId}`, asset: WKS.deviceName });
  });

  it('matches a DNS name case-insensitively, as the directory reports it', async () => {
    const rules = ex({ devices: [{ name: 'FIN-WKS-0142.Corp.Contoso.com' }] });
    expect((await evaluateExclusion(rules, isolate(WKS), incident, directory)).kind).toBe('excluded');
    expect(
      (await evaluateExclusion(rules, isolate({ deviceId: WKS.deviceId }), incident, directory)).kind,
    ).toBe('excluded');
  });

  it('does not match similar names', async () => {
    const rules = ex({
      devices: [
        { name: 'fin-wks-014.corp.contoso.com' },
        { name: 'fin-wks-0142' },
        { id: WKS.deviceId.slice(0, 39) },
      ],
    });
    expect((await evaluateExclusion(rules, isolate(WKS), incident, directory)).kind).toBe('allowed');
  });

  it('matches a device group (rbacGroupName) and reports "device group <name>"', async () => {
    const d = await evaluateExclusion(
      ex({ devices: [{ group: 'finance-servers' }] }),
      isolate(APP),
      incident,
      directory,
    );
    expect(d).toMatchObject({ kind: 'excluded', rule: 'device group finance-servers' });
    const other = await evaluateExclusion(
      ex({ devices: [{ group: 'Finance-Server' }] }),
      isolate(APP),
      incident,
      directory,
    );
    expect(other.kind).toBe('allowed');
  });

  it('matches a machine tag, and an empty tag list matches nothing', async () => {
    expect(
      (await evaluateExclusion(ex({ devices: [{ tag: 'tier0' }] }), isolate(APP), incident, directory)).kind,
    ).toBe('excluded');
    expect(
      (await evaluateExclusion(ex({ devices: [{ tag: 'Tier0' }] }), isolate(WKS), incident, directory)).kind,
    ).toBe('allowed');
  });

  it('applies device rules to stop-and-quarantine targets', async () => {
    const action = {
      type: 'stopAndQuarantineFile' as const,
      target: { deviceId: APP.deviceId, sha1: 'a'.repeat(40) },
    };
    expect(
      (await evaluateExclusion(ex({ devices: [{ group: 'Finance-Servers' }] }), action, incident, directory))
        .kind,
    ).toBe('excluded');
  });

  it('fails closed when the device group cannot be read', async () => {
    const d = await evaluateExclusion(
      ex({ devices: [{ group: 'Domain Controllers' }] }),
      isolate(WKS),
      incident,
      failing,
    );
    expect(d.kind).toBe('unverifiable');
    expect(d.kind === 'unverifiable' && d.reason).toContain('Defender answered 503');
  });

  it('still excludes by id when the directory is down', async () => {
    const d = await evaluateExclusion(
      ex({ devices: [{ id: WKS.deviceId }, { group: 'X' }] }),
      isolate(WKS),
      incident,
      failing,
    );
    expect(d.kind).toBe('excluded');
  });

  it('fails closed for a device absent from the evidence when group rules exist', async () => {
    const d = await evaluateExclusion(
      ex({ devices: [{ tag: 'VIP' }] }),
      isolate({ deviceId: 'f'.repeat(40) }),
      incident,
      directory,
    );
    expect(d.kind).toBe('unverifiable');
  });

  it('fails closed when the directory has no DNS name for the device and a name rule exists', async () => {
    const nameless: AssetDirectory = {
      ...failing,
      deviceFacts: async () => ({ id: APP.deviceId, tags: [] }),
    };
    const d = await evaluateExclusion(
      ex({ devices: [{ name: 'dc01.contoso.com' }] }),
      isolate(APP),
      incident,
      nameless,
    );
    expect(d).toMatchObject({ kind: 'unverifiable', reason: expect.stringContaining('no DNS name') });
  });

  it('fails closed when the directory answers for another device than the one asked for', async () => {
    const other: AssetDirectory = { ...failing, deviceFacts: async () => ({ id: APP.deviceId, tags: [] }) };
    const d = await evaluateExclusion(ex({ devices: [{ tag: 'VIP' }] }), isolate(WKS), incident, other);
    expect(d.kind).toBe('unverifiable');
  });

  it('returns the device id the facts were read for', async () => {
    const d = await evaluateExclusion(ex({ devices: [{ tag: 'VIP' }] }), isolate(WKS), incident, directory);
    expect(d).toEqual({ kind: 'allowed', subject: { deviceId: WKS.deviceId } });
  });

  it('allows everything when there are no rules', async () => {
    expect((await evaluateExclusion(ex({}), isolate(WKS), incident, failing)).kind).toBe('allowed');
  });
});

describe('user exclusions', () => {
  it('matches a UPN case-insensitively and names the rule', async () => {
    const d = await evaluateExclusion(
      ex({ users: [{ upn: 'Alex.Vance@CONTOSO.com' }] }),
      revoke(ALEX),
      incident,
      directory,
    );
    expect(d).toEqual({ kind: 'excluded', rule: 'user Alex.Vance@CONTOSO.com', asset: ALEX.upn });
  });

  it('matches an object id, even when the action names the user by id only', async () => {
    const d = await evaluateExclusion(
      ex({ users: [{ id: ALEX.userId }] }),
      revoke({ userId: ALEX.userId }),
      incident,
      directory,
    );
    expect(d.kind).toBe('excluded');
    const upnOnly = await evaluateExclusion(
      ex({ users: [{ id: ALEX.userId }] }),
      revoke({ upn: ALEX.upn }),
      incident,
      directory,
    );
    expect(upnOnly.kind).toBe('excluded');
  });

  it('does not match a similar UPN', async () => {
    const d = await evaluateExclusion(
      ex({ users: [{ upn: 'alex.vance@contoso.co' }, { upn: 'lex.vance@contoso.com' }] }),
      revoke(ALEX),
      incident,
      directory,
    );
    expect(d.kind).toBe('allowed');
  });

  it('matches a user group and reports "user group <name>"', async () => {
    const d = await evaluateExclusion(
      ex({ users: [{ group: 'executives' }] }),
      revoke(ALEX),
      incident,
      directory,
    );
    expect(d).toMatchObject({ kind: 'excluded', rule: 'user group executives' });
  });

  it('does not match a user outside the group, nor an empty group name list', async () => {
    const bea = { upn: 'bea.ortiz@contoso.com' };
    expect(
      (await evaluateExclusion(ex({ users: [{ group: 'Executives' }] }), revoke(bea), incident, directory))
        .kind,
    ).toBe('allowed');
    expect(
      (await evaluateExclusion(ex({ users: [{ group: 'Exec' }] }), revoke(ALEX), incident, directory)).kind,
    ).toBe('allowed');
  });

  it('checks the recipient of a soft-delete', async () => {
    const action = {
      type: 'softDeleteEmails' as const,
      target: { networkMessageId: 'm-1', recipient: 'ALEX.VANCE@contoso.com' },
    };
    expect(
      (await evaluateExclusion(ex({ users: [{ group: 'Executives' }] }), action, incident, directory)).kind,
    ).toBe('excluded');
  });

  it('fails closed when the directory answers for another user than the one asked for', async () => {
    const other: AssetDirectory = {
      ...failing,
      resolveUser: async () => ({
        id: 'e6b2d8f4-1a3c-4e5f-9b7d-0c2a4e6f8b1d',
        userPrincipalName: 'bea.ortiz@contoso.com',
        proxyAddresses: [],
      }),
    };
    const d = await evaluateExclusion(
      ex({ users: [{ upn: 'ceo@contoso.com' }] }),
      revoke(ALEX),
      incident,
      other,
    );
    expect(d).toMatchObject({ kind: 'unverifiable', asset: ALEX.upn });
  });

  it('fails closed when the action names no user at all', async () => {
    const d = await evaluateExclusion(
      ex({ users: [{ upn: 'ceo@contoso.com' }] }),
      revoke({}),
      incident,
      directory,
    );
    expect(d).toMatchObject({ kind: 'unverifiable', reason: expect.stringContaining('names no user') });
  });

  it('fails closed when group membership cannot be read', async () => {
    const d = await evaluateExclusion(
      ex({ users: [{ group: 'Executives' }] }),
      revoke(ALEX),
      incident,
      groupsDown,
    );
    expect(d).toMatchObject({ kind: 'unverifiable', asset: ALEX.upn });
    expect(d.kind === 'unverifiable' && d.reason).toMatch(/Microsoft Graph answered 503/);
  });

  it('device rules never exclude users and user rules never exclude devices', async () => {
    expect(
      (await evaluateExclusion(ex({ devices: [{ name: ALEX.upn }] }), revoke(ALEX), incident, failing)).kind,
    ).toBe('allowed');
    expect(
      (await evaluateExclusion(ex({ users: [{ upn: WKS.deviceName }] }), isolate(WKS), incident, failing))
        .kind,
    ).toBe('allowed');
  });
});
