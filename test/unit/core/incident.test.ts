import { describe, expect, it } from 'vitest';
import { ACTION_CATALOGUE, ACTION_TYPES } from '../../../core/actions.js';
import { InvalidInputError } from '../../../core/errors.js';
import { parseIngestBody, toIncidentRecord } from '../../../core/incident.js';
import { sampleIngestBody, shippedSample } from '../../support/incident-factory.js';

function fieldOf(body: unknown): string {
  try {
    parseIngestBody(body);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    return (error as InvalidInputError).issues.map((i) => i.path).join(',');
  }
  throw new Error('expected the body to be refused');
}

describe('the incident model', () => {
  it('parses the reference Graph incident with its evidence', () => {
    const record = toIncidentRecord(
      parseIngestBody(sampleIngestBody(shippedSample())),
      '2026-11-27T10:00:00Z',
    );
    expect(record).toMatchObject({
      id: '48213',
      severity: 'high',
      title: expect.stringContaining('Multi-stage'),
    });
    expect(record.devices).toEqual([
      {
        id: '4a1f9c2e7b3d8e06c5a2f1b9d7e3c8a0b6f2d4e1',
        dnsName: 'fin-wks-0142.corp.contoso.com',
        group: 'Finance-Workstations',
        tags: [],
      },
      {
        id: '9e0d3b7c1a5f2e48d6c9b0a3f7e1d2c5b8a4f6e9',
        dnsName: 'fin-app-07.corp.contoso.com',
        group: 'Finance-Servers',
        tags: ['Tier0'],
      },
    ]);
    expect(record.users.map((u) => u.upn)).toEqual(['alex.vance@contoso.com', 'bea.ortiz@contoso.com']);
    expect(record.files[0]).toMatchObject({
      sha1: '2d6e8c1b9f4a7e3d5c0b8a6f1e9d2c7b4a3f5e8d',
      name: 'Invoice_0314.exe',
    });
    expect(record.messages[0]).toMatchObject({
      networkMessageId: '0c8e4a2f-6b1d-4f3e-9a70-08dd62d1c4b5',
      recipient: 'bea.ortiz@contoso.com',
    });
    expect(record.portalUrl).toMatch(/^https:\/\/security\.microsoft\.com\/incidents\/48213/);
  });

  it('accepts PascalCase enums, numeric ids and unknown fields', () => {
    const body = sampleIngestBody(shippedSample());
    const incident: Record<string, unknown> = body.incident;
    incident.id = 48213;
    incident.severity = 'High';
    incident.somethingNew = { nested: true };
    (body.incident.alerts[0]!.evidence as unknown[]).push({
      '@odata.type': '#microsoft.graph.security.futureEvidence',
      x: 1,
    });
    const parsed = parseIngestBody(body);
    expect(parsed.incident.id).toBe('48213');
    expect(parsed.incident.severity).toBe('high');
  });

  it('names the field of every malformed variant', () => {
    const variants: [string, (b: Record<string, any>) => void][] = [
      ['incident', (b) => delete b.incident],
      ['incident.id', (b) => delete b.incident.id],
      ['incident.id', (b) => (b.incident.id = 'has spaces')],
      ['incident.alerts', (b) => (b.incident.alerts = 'none')],
      ['incident.incidentWebUrl', (b) => (b.incident.incidentWebUrl = 'javascript:alert(1)')],
      ['managedResponse', (b) => delete b.managedResponse],
      ['managedResponse.actions[0].type', (b) => (b.managedResponse.actions[0].type = 'wipeDevice')],
      [
        'managedResponse.actions[0].target.deviceId',
        (b) => delete b.managedResponse.actions[0].target.deviceId,
      ],
      ['managedResponse.actions[3].target.sha1', (b) => (b.managedResponse.actions[3].target.sha1 = 'xyz')],
      [
        'managedResponse.actions[2].target.recipient',
        (b) => delete b.managedResponse.actions[2].target.recipient,
      ],
      ['managedResponse.actions[1].target.userId', (b) => (b.managedResponse.actions[1].target = {})],
      ['managedResponse.actions[1].id', (b) => (b.managedResponse.actions[1].id = 'act-1')],
      ['managedResponse.actions[0].status', (b) => (b.managedResponse.actions[0].status = 'maybe')],
      ['managedResponse.summary', (b) => (b.managedResponse.summary = 42)],
    ];
    for (const [field, mutate] of variants) {
      const body = sampleIngestBody(shippedSample());
      mutate(body);
      expect(fieldOf(body), field).toContain(field);
    }
  });

  it('knows the 14 actions and the target each needs', () => {
    expect(ACTION_TYPES).toHaveLength(14);
    const kinds = Object.fromEntries(ACTION_TYPES.map((t) => [t, ACTION_CATALOGUE[t].kind]));
    expect(kinds).toEqual({
      isolateDevice: 'device',
      releaseDeviceFromIsolation: 'device',
      runAntivirusScan: 'device',
      stopAndQuarantineFile: 'deviceFile',
      releaseFileFromQuarantine: 'deviceFile',
      restrictAppExecution: 'device',
      removeAppRestriction: 'device',
      forcePasswordReset: 'user',
      disableUser: 'user',
      enableUser: 'user',
      suspendUser: 'user',
      unsuspendUser: 'user',
      revokeUserTokens: 'user',
      softDeleteEmails: 'message',
    });
  });
});
