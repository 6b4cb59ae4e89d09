import { describe, expect, it } from 'vitest';
import { buildIncidentView } from '../../../cards/incident-view.js';
import { escapeTeamsMarkdown, renderTeamsCard, renderTeamsTaskList } from '../../../cards/teams/render.js';
import { validateAdaptiveCard } from '../../../cards/validate.js';
import { taskOf } from '../../../core/tasks.js';
import {
  everyStateIncident,
  failedWithClosedTasksIncident,
  incidentState,
  SAMPLE_NOW,
} from '../../support/incident-factory.js';
import { SCENARIOS, VIEW_OPTIONS } from './scenarios.js';

type Json = Record<string, unknown>;

function walk(node: unknown, visit: (obj: Json) => void): void {
  if (Array.isArray(node)) for (const n of node) walk(n, visit);
  else if (node && typeof node === 'object') {
    visit(node as Json);
    for (const v of Object.values(node)) walk(v, visit);
  }
}

function executeActions(card: Json): Json[] {
  const out: Json[] = [];
  walk(card.body, (o) => {
    if (o.type === 'Action.Execute') out.push(o);
  });
  return out;
}

describe('renderTeamsCard', () => {
  describe.each(SCENARIOS)('%s', (_name, build) => {
    const view = buildIncidentView(build(), VIEW_OPTIONS);

    it('matches the snapshot of the shared card', () => {
      expect(
        renderTeamsCard(view, { viewer: 'shared', userIds: ['29:expert', '29:customer'] }),
      ).toMatchSnapshot();
    });

    it('gives each viewer their own buttons', () => {
      const verbs = Object.fromEntries(
        (['shared', 'expert', 'customer', 'admin', 'other'] as const).map((viewer) => [
          viewer,
          executeActions(renderTeamsCard(view, { viewer })).map(
            (a) => `${a.verb}:${(a.data as Json).actionId}`,
          ),
        ]),
      );
      expect(verbs).toMatchSnapshot();
      expect(verbs.other).toEqual([]);
    });

    it('is a valid Adaptive Card 1.5 for every viewer', () => {
      for (const viewer of ['shared', 'expert', 'customer', 'admin', 'other'] as const) {
        const card = renderTeamsCard(view, { viewer, notice: 'Done.' });
        expect(card.version).toBe('1.5');
        expect(validateAdaptiveCard(card)).toEqual([]);
        expect(JSON.stringify(card)).not.toContain('${');
      }
    });
  });

  it('puts only the incident id and the action id in button data', () => {
    const view = buildIncidentView(everyStateIncident(), VIEW_OPTIONS);
    const card = renderTeamsCard(view, { viewer: 'shared' });
    const actions = [...executeActions(card), ...executeActions(renderTeamsCard(view, { viewer: 'admin' }))];
    expect(new Set(actions.map((a) => a.verb))).toEqual(
      new Set(['approve', 'reject', 'markDone', 'retry', 'handover', 'skip', 'runMyself']),
    );
    for (const a of actions) {
      expect(Object.keys(a.data as Json).sort()).toEqual(['actionId', 'incidentId']);
      expect((a.data as Json).incidentId).toBe('48213');
    }
    expect((card.actions as Json[]).at(-1)).toEqual({
      type: 'Action.Execute',
      title: 'Refresh',
      verb: 'refresh',
      data: { incidentId: '48213' },
    });
  });

  it('shows experts Approve, Reject, Retry and Hand to customer, customers Mark done and Skip, admins also Run it myself', () => {
    const view = buildIncidentView(everyStateIncident(), VIEW_OPTIONS);
    const verbs = (viewer: 'expert' | 'customer' | 'admin' | 'shared') =>
      executeActions(renderTeamsCard(view, { viewer })).map((a) => `${a.verb}:${(a.data as Json).actionId}`);
    expect(verbs('expert')).toEqual([
      'retry:act-7',
      'handover:act-7',
      'approve:act-10',
      'reject:act-10',
      'markDone:act-5',
    ]);
    expect(verbs('customer')).toEqual(['markDone:act-3', 'skip:act-3']);
    expect(verbs('admin')).toEqual(['markDone:act-3', 'runMyself:act-3', 'skip:act-3']);
    expect(verbs('shared')).not.toContain('runMyself:act-3');
  });

  it('asks to confirm Run it myself and asks for the reason of Skip in cards that open under the buttons', () => {
    const card = renderTeamsCard(buildIncidentView(everyStateIncident(), VIEW_OPTIONS), { viewer: 'admin' });
    const shown: Json[] = [];
    walk(card.body, (o) => {
      if (o.type === 'Action.ShowCard') shown.push(o);
    });
    expect(shown.map((a) => a.title)).toEqual(['Run it myself', 'Skip']);
    const [run = {}, skip = {}] = shown.map((a) => a.card as Json);
    expect(JSON.stringify(run.body)).toContain('as your team');
    expect((run.actions as Json[])[0]).toMatchObject({ type: 'Action.Execute', verb: 'runMyself' });
    expect((skip.body as Json[])[0]).toMatchObject({
      type: 'Input.Text',
      id: 'reason-act-3',
      isRequired: true,
    });
    expect((skip.actions as Json[])[0]).toMatchObject({ type: 'Action.Execute', verb: 'skip' });
  });

  it('shows failures first with their reason, then the closed tasks under "Done by your team"', () => {
    const card = renderTeamsCard(buildIncidentView(failedWithClosedTasksIncident(), VIEW_OPTIONS), {
      viewer: 'shared',
    });
    const blocks: Json[] = [];
    walk(card.body, (o) => {
      if (o.type === 'TextBlock') blocks.push(o);
    });
    const titles = blocks.filter(
      (b) => b.weight === 'Bolder' && b.color !== undefined && /\(\d+\)$/.test(String(b.text)),
    );
    expect(titles.map((b) => [b.text, b.color])).toEqual([
      ['Failed (1)', 'Attention'],
      ['Completed by experts (1)', 'Good'],
      ['Done by your team (2)', 'Good'],
    ]);
    const texts = blocks.map((b) => String(b.text));
    const failure = texts.indexOf('Failed at 10:58 UTC');
    expect(failure).toBeGreaterThan(texts.indexOf('Failed (1)'));
    expect(texts[failure + 1]).toBe('Reason: Defender: Failed (the device has not reported in for 7 days)');
    expect(texts).toContain('Skipped by @U0CUSTOMER1 at 11:20 UTC');
    expect(texts).toContain('Reason: the workstation was reimaged by our IT team');
    expect(texts.some((t) => t.startsWith('Pending customer actions'))).toBe(false);
  });

  it('counts open work only in the facts', () => {
    const facts = (state: ReturnType<typeof everyStateIncident>) => {
      const out: Json[] = [];
      walk(renderTeamsCard(buildIncidentView(state, VIEW_OPTIONS), { viewer: 'shared' }).body, (o) => {
        if (o.type === 'FactSet') out.push(...(o.facts as Json[]));
      });
      return out.map((f) => `${f.title}: ${f.value}`);
    };
    expect(facts(everyStateIncident())).toEqual([
      'Status: ⏳ In progress',
      'Received: 09:05 UTC',
      'Failed: 1 to retry or hand over',
      'Experts: 4 awaiting approval, running or by hand',
      'Your team: 1 to do',
    ]);
    expect(facts(failedWithClosedTasksIncident())).toEqual([
      'Status: ⏳ In progress',
      'Received: 09:05 UTC',
      'Failed: 1 to retry or hand over',
    ]);
  });

  it('adds a refresh section for at most 60 users to the shared card only', () => {
    const view = buildIncidentView(incidentState(), VIEW_OPTIONS);
    const userIds = Array.from({ length: 75 }, (_, i) => `29:user-${i}`);
    const shared = renderTeamsCard(view, { viewer: 'shared', userIds });
    expect(shared.refresh).toEqual({
      action: { type: 'Action.Execute', title: 'Refresh', verb: 'refresh', data: { incidentId: '48213' } },
      userIds: userIds.slice(0, 60),
    });
    expect(renderTeamsCard(view, { viewer: 'expert' }).refresh).toBeUndefined();
    expect(renderTeamsCard(view, { viewer: 'shared' }).refresh).toEqual({
      action: { type: 'Action.Execute', title: 'Refresh', verb: 'refresh', data: { incidentId: '48213' } },
      userIds: [],
    });
  });

  it('shows a notice at the top of the clicker card', () => {
    const card = renderTeamsCard(buildIncidentView(incidentState(), VIEW_OPTIONS), {
      viewer: 'customer',
      notice: 'Only the MDR experts may approve actions.',
    });
    const first = (card.body as Json[])[0] as Json;
    expect(first.style).toBe('warning');
    expect(JSON.stringify(first)).toContain('Only the MDR experts may approve actions.');
  });

  it('stays within 28 KB', () => {
    const card = renderTeamsCard(buildIncidentView(everyStateIncident(), VIEW_OPTIONS), { viewer: 'shared' });
    expect(Buffer.byteLength(JSON.stringify(card))).toBeLessThanOrEqual(28_000);
  });
});

describe('renderTeamsTaskList', () => {
  it('lists pending tasks with a Mark done button each', () => {
    const state = everyStateIncident();
    const tasks = state.actions.flatMap((a) => taskOf(a) ?? []);
    const card = renderTeamsTaskList(tasks, { now: SAMPLE_NOW, apiBaseUrl: 'https://mdr-bot.contoso.com' });
    expect(card).toMatchSnapshot();
    expect(validateAdaptiveCard(card)).toEqual([]);
    expect(executeActions(card).map((a) => a.data)).toEqual([{ incidentId: '48213', actionId: 'act-3' }]);
  });

  it('says so when nothing is pending', () => {
    const card = renderTeamsTaskList([]);
    expect(JSON.stringify(card)).toContain('No pending customer tasks.');
    expect(validateAdaptiveCard(card)).toEqual([]);
  });
});

describe('escapeTeamsMarkdown', () => {
  it('makes markdown literal', () => {
    expect(escapeTeamsMarkdown('[click](javascript:alert(1)) *b* _i_ `c` <x>')).toBe(
      '\\[click\\](javascript:alert(1)) \\*b\\* \\_i\\_ \\`c\\` \\<x>',
    );
    expect(escapeTeamsMarkdown('# h\n- item\n1. one\n> quote')).toBe('\\# h\n\\- item\n1\\. one\n\\> quote');
  });
});
