import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildIncidentView } from '../../../cards/incident-view.js';
import { renderSlackMessage, SLACK_TEXT_BUDGET } from '../../../cards/slack/render.js';
import { renderTeamsCard, TEAMS_CARD_MAX_BYTES } from '../../../cards/teams/render.js';
import { checkSlackLimits, validateAdaptiveCard } from '../../../cards/validate.js';
import { ACTION_STATES, ACTION_TYPES } from '../../../core/actions.js';
import type { ActionRecord, IncidentState } from '../../../core/model.js';
import { incidentState, SAMPLE_NOW } from '../../support/incident-factory.js';

// biome-ignore lint/suspicious/noTemplateCurlyInString: template syntax in incident text is the hostile input under test.
const SECRET = '${secret}';
const hostile = fc.constantFrom(
  SECRET,
  '<!channel>',
  '<@U123>',
  '[click](javascript:alert(1))',
  '*bold*',
  '<script>alert(1)</script>',
  'مرحبا 👋🏽',
  '&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&',
);
const text = (max: number) =>
  fc.oneof(
    fc.string({ maxLength: Math.min(max, 60) }),
    fc.string({ unit: 'grapheme', maxLength: Math.min(max, 200) }),
    hostile,
    fc.nat({ max }).map((n) => '&'.repeat(n)),
    fc.nat({ max }).map((n) => 'w'.repeat(n)),
  );
const id = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/);

const action = (i: number): fc.Arbitrary<ActionRecord> =>
  fc.record({
    incidentId: fc.constant('48213'),
    id: id.map((s) => `${i}-${s}`.slice(0, 128)),
    type: fc.constantFrom(...ACTION_TYPES),
    target: fc.record(
      {
        deviceId: text(200),
        deviceName: text(10_000),
        upn: text(10_000),
        recipient: text(300),
        sha1: text(60),
      },
      { requiredKeys: [] },
    ),
    reason: fc.option(text(2_000), { nil: undefined }),
    state: fc.constantFrom(...ACTION_STATES),
    excludedBy: fc.option(text(500), { nil: null }),
    decidedBy: fc.option(text(300), { nil: null }),
    createdAt: fc.constant('2025-03-14T09:05:00.000Z'),
    updatedAt: fc.constant('2025-03-14T10:05:00.000Z'),
    error: fc.option(text(2_000), { nil: undefined }),
    progress: fc.option(text(500), { nil: undefined }),
    blockedReason: fc.option(text(500), { nil: undefined }),
    skippedBy: fc.option(text(300), { nil: undefined }),
    skipReason: fc.option(text(2_000), { nil: undefined }),
    dryRun: fc.boolean(),
    version: fc.constant(1),
  });

const incident: fc.Arbitrary<IncidentState> = fc
  .record({
    title: text(1_000),
    summary: fc.oneof(
      text(2_000),
      fc.nat({ max: 50_000 }).map((n) => 'lorem & ipsum <x> '.repeat(n / 18)),
    ),
    devices: fc.array(
      fc.record({ id: text(100), dnsName: text(300), group: text(100), tags: fc.constant<string[]>([]) }),
      {
        maxLength: 200,
      },
    ),
    users: fc.array(fc.record({ upn: text(300), displayName: text(300) }), { maxLength: 150 }),
    messages: fc.array(fc.record({ networkMessageId: text(100), subject: text(500) }), { maxLength: 100 }),
    files: fc.array(fc.record({ name: text(300), sha1: text(40) }), { maxLength: 50 }),
    actionCount: fc.nat({ max: 200 }),
  })
  .chain((r) =>
    fc.tuple(...Array.from({ length: r.actionCount }, (_, i) => action(i))).map((actions) => {
      const base = incidentState();
      return {
        incident: {
          ...base.incident,
          title: r.title,
          summary: r.summary,
          devices: r.devices,
          users: r.users,
          messages: r.messages,
          files: r.files,
        },
        actions,
      };
    }),
  );

function checkBoth(state: IncidentState) {
  const view = buildIncidentView(state, { now: SAMPLE_NOW, apiBaseUrl: 'https://mdr-bot.contoso.com' });
  const message = renderSlackMessage(view, { notice: 'Approved.' });
  expect(checkSlackLimits(message)).toEqual([]);
  expect(checkSlackLimits(message, { totalBlockText: SLACK_TEXT_BUDGET })).toEqual([]);
  for (const viewer of ['shared', 'expert', 'customer'] as const) {
    const card = renderTeamsCard(view, { viewer, notice: 'Approved.' });
    expect(Buffer.byteLength(JSON.stringify(card))).toBeLessThanOrEqual(TEAMS_CARD_MAX_BYTES);
    expect(validateAdaptiveCard(card)).toEqual([]);
  }
  return { view, message };
}

describe('platform limits', () => {
  it('holds for an incident with 200 actions, 500 assets and a 50 KB summary', () => {
    const base = incidentState();
    const actions = Array.from(
      { length: 200 },
      (_, i): ActionRecord => ({
        ...base.actions[0]!,
        id: `act-${i}`,
        state: ACTION_STATES[i % ACTION_STATES.length]!,
        excludedBy: 'device group Finance-Workstations',
        reason: 'x'.repeat(2_000),
      }),
    );
    const devices = Array.from({ length: 500 }, (_, i) => ({
      id: `d${i}`,
      dnsName: `ws-${i}.contoso.com`,
      tags: [],
    }));
    const state = { incident: { ...base.incident, devices, summary: 'word '.repeat(10_240) }, actions };
    const { message } = checkBoth(state);
    const json = JSON.stringify(message);
    expect(json).toMatch(/…and \d+ more: see the full list/);
    expect(json).toContain('Devices (500)');
    expect(json).toContain('…and 495 more');
  });

  it('holds for random incidents on both platforms', () => {
    fc.assert(
      fc.property(incident, (state) => {
        checkBoth(state);
      }),
      { numRuns: 40 },
    );
  });
});
