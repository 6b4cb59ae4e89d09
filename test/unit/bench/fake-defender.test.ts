import { describe, expect, it } from 'vitest';
import { matches, parseFilter } from '../../../bench/support/defender-filter.js';
import { RateWindow } from '../../../bench/support/rate-window.js';

const action = {
  id: 'b7e41c92-3f05-4d6a-9a18-5c2e7d0f8a31',
  type: 'Isolate',
  status: 'Pending',
  machineId: '4a1f9c2e7b3d8e06c5a2f1b9d7e3c8a0b6f2d4e1',
};

describe('the fake Defender $filter', () => {
  it('reads id in (...) as the batched follow-up sends it', () => {
    const parsed = parseFilter(`id in ('${action.id}','c0ffee00-0000-4000-8000-000000000001')`);
    expect(parsed).toEqual({
      ok: true,
      clauses: [{ field: 'id', values: [action.id, 'c0ffee00-0000-4000-8000-000000000001'] }],
    });
    if (parsed.ok) expect(matches(action, parsed.clauses)).toBe(true);
  });

  it('reads the pending lookup (machineId, type and status joined by and)', () => {
    const parsed = parseFilter(
      `machineId eq '${action.machineId}' and type eq 'Isolate' and status eq 'Pending'`,
    );
    expect(parsed.ok && parsed.clauses.map((c) => c.field)).toEqual(['machineId', 'type', 'status']);
    if (!parsed.ok) return;
    expect(matches(action, parsed.clauses)).toBe(true);
    expect(matches({ ...action, status: 'InProgress' }, parsed.clauses)).toBe(false);
    expect(matches({ ...action, type: 'Unisolate' }, parsed.clauses)).toBe(false);
  });

  it("keeps ' and ' and doubled quotes inside a literal", () => {
    const parsed = parseFilter("requestor eq 'soc and ''mdr'''");
    expect(parsed).toEqual({ ok: true, clauses: [{ field: 'requestor', values: ["soc and 'mdr'"] }] });
  });

  it('refuses what Defender would refuse: an unknown field, an operator it does not take, no quotes', () => {
    expect(parseFilter("computerDnsName eq 'ws-1'").ok).toBe(false);
    expect(parseFilter("status ne 'Pending'").ok).toBe(false);
    expect(parseFilter('id in (a,b)').ok).toBe(false);
    expect(parseFilter("id eq 'a' or id eq 'b'").ok).toBe(false);
  });

  it('takes no filter as every action', () => {
    expect(parseFilter(null)).toEqual({ ok: true, clauses: [] });
  });
});

describe("the fake Defender's rate limits", () => {
  it('accepts 100 calls a minute, then answers with the seconds until the oldest leaves the minute', () => {
    const window = new RateWindow();
    for (let i = 0; i < 100; i++) expect(window.take(i * 100)).toBe(0);
    expect(window.take(20_000)).toBe(40);
    expect(window.take(59_999)).toBe(1);
    expect(window.take(60_000)).toBe(0);
  });

  it('holds 1,500 calls an hour even when each minute stays under 100', () => {
    const window = new RateWindow();
    const every = 60_000 / 100; // exactly the per-minute pace
    for (let i = 0; i < 1_500; i++) expect(window.take(i * every)).toBe(0);
    const now = 1_500 * every; // 15 minutes in
    expect(window.take(now)).toBe(Math.ceil((3_600_000 - now) / 1000));
  });
});
