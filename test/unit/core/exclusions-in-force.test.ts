import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../../adapters/memory-store.js';
import { changeExclusions, EXCLUSION_CHANGE_ATTEMPTS } from '../../../core/change-exclusions.js';
import { ConflictError } from '../../../core/errors.js';
import { exclusionsInForce, withoutSources } from '../../../core/exclusions-in-force.js';
import type { AuditEntry, ExclusionChanges, Exclusions } from '../../../core/model.js';
import { ADMIN, coreHarness } from '../../support/core-harness.js';

const FILE: Exclusions = {
  devices: [{ group: 'Finance-Servers' }, { tag: 'VIP' }],
  users: [{ upn: 'ceo@contoso.com' }],
};
const at = '2026-11-27T10:00:00.000Z';

function changes(overrides: Partial<ExclusionChanges> = {}): ExclusionChanges {
  return { version: 1, added: { devices: [], users: [] }, removed: { devices: [], users: [] }, ...overrides };
}

describe('exclusionsInForce', () => {
  it('is (file ∪ added) − removed, file rules first, compared case-insensitively, each with its source', () => {
    const inForce = exclusionsInForce(
      FILE,
      changes({
        added: {
          devices: [
            { rule: { name: 'dc01.contoso.com' }, by: 'slack:U0ADMIN1', at },
            { rule: { group: 'finance-servers' }, by: 'api:admin', at },
          ],
          users: [{ rule: { group: 'Executives' }, by: 'api:admin', at }],
        },
        removed: { devices: [{ rule: { tag: 'vip' }, by: 'slack:U0ADMIN1', at }], users: [] },
      }),
    );

    expect(inForce).toEqual({
      devices: [
        { group: 'Finance-Servers', source: 'policy file' },
        { name: 'dc01.contoso.com', source: `added by slack:U0ADMIN1 at ${at}` },
      ],
      users: [
        { upn: 'ceo@contoso.com', source: 'policy file' },
        { group: 'Executives', source: `added by api:admin at ${at}` },
      ],
    });
    expect(withoutSources(exclusionsInForce(FILE, changes())).devices).toEqual(FILE.devices);
  });

  it('reads the whole list an earlier version stored as what it added to and removed from the file', () => {
    const legacy: Exclusions = { devices: [{ tag: 'VIP' }, { name: 'dc01.contoso.com' }], users: [] };

    const inForce = exclusionsInForce(FILE, { ...changes({ version: 0 }), legacy });

    expect(withoutSources(exclusionsInForce(FILE, { ...changes({ version: 0 }), legacy }))).toEqual(legacy);
    expect(inForce.devices.map((r) => r.source)).toEqual([
      'policy file',
      'added by a run-time change kept by an earlier version of the bot',
    ]);
  });
});

/** A store another admin keeps writing to between each read and save of the exclusions. */
class ContendedStore extends MemoryStore {
  override async getExclusionChanges(): Promise<ExclusionChanges> {
    const read = await super.getExclusionChanges();
    const other: AuditEntry = {
      at,
      actor: 'slack:U0OTHER',
      platform: 'slack',
      event: 'exclude',
      outcome: 'ok',
      detail: 'other',
    };
    await super.saveExclusionChanges(read, read.version, other);
    return read;
  }
}

describe('changeExclusions under contention', () => {
  it('retries a lost compare-and-set, then gives up with a conflict, audited, having changed nothing', async () => {
    const store = new ContendedStore();
    const h = coreHarness({ store, policy: { exclusions: FILE } });

    await expect(
      changeExclusions(h.deps, { op: 'add', kind: 'device-tag', value: 'Crown-Jewels' }, ADMIN),
    ).rejects.toBeInstanceOf(ConflictError);

    const audit = await store.listAudit();
    expect(audit.filter((e) => e.actor === 'slack:U0OTHER')).toHaveLength(EXCLUSION_CHANGE_ATTEMPTS);
    expect(audit.at(-1)).toMatchObject({
      actor: ADMIN.id,
      outcome: 'failed',
      detail: 'conflict: device tag Crown-Jewels',
    });
    expect((await store.getExclusionChanges()).added.devices).toEqual([]);
  });
});
