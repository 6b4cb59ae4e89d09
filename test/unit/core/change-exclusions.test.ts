import { describe, expect, it } from 'vitest';
import { StaticAssetDirectory } from '../../../adapters/static-directory.js';
import { changeExclusions } from '../../../core/change-exclusions.js';
import { ADMIN, CUSTOMER, coreHarness } from '../../support/core-harness.js';

describe('changeExclusions', () => {
  it('admins only; adds and removes rules; audited either way', async () => {
    const h = coreHarness({ directory: new StaticAssetDirectory() });
    expect(
      await changeExclusions(h.deps, { op: 'add', kind: 'user', value: 'ceo@contoso.com' }, CUSTOMER),
    ).toMatchObject({ ok: false, code: 'not_admin' });
    expect(
      await changeExclusions(h.deps, { op: 'add', kind: 'user', value: 'ceo@contoso.com' }, ADMIN),
    ).toMatchObject({
      ok: true,
      rule: 'user ceo@contoso.com',
      exclusions: { users: [{ upn: 'ceo@contoso.com' }] },
    });
    expect(
      await changeExclusions(h.deps, { op: 'remove', kind: 'user', value: 'CEO@contoso.com' }, ADMIN),
    ).toMatchObject({
      ok: true,
      exclusions: { users: [] },
    });
    const audit = await h.store.listAudit();
    expect(audit.map((e) => `${e.event}:${e.outcome}`)).toEqual([
      'exclude:refused',
      'exclude:ok',
      'unexclude:ok',
    ]);
  });
});
