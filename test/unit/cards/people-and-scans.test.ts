import { describe, expect, it } from 'vitest';
import { buildIncidentView } from '../../../cards/incident-view.js';
import { renderSlackMessage, renderSlackTaskList } from '../../../cards/slack/render.js';
import { renderTeamsCard, renderTeamsTaskList } from '../../../cards/teams/render.js';
import { validateAdaptiveCard } from '../../../cards/validate.js';
import { taskOf } from '../../../core/tasks.js';
import { incidentState, SAMPLE, sampleActions, sampleIngestBody } from '../../support/incident-factory.js';
import { VIEW_OPTIONS } from './scenarios.js';

const MORGAN = 'teams:6f2c0a4e-1111-4aad-9d7e-000000000e01';
const AT = '2025-03-14T10:42:00.000Z';

function withScans() {
  return incidentState({
    body: sampleIngestBody({
      actions: [
        ...sampleActions(),
        {
          id: 'act-7',
          type: 'runAntivirusScan',
          status: 'proposed',
          target: { deviceId: SAMPLE.workstationId, deviceName: SAMPLE.workstation },
        },
        {
          id: 'act-8',
          type: 'runAntivirusScan',
          status: 'proposed',
          target: { deviceId: SAMPLE.workstationId, deviceName: SAMPLE.workstation },
        },
      ],
    }),
    states: {
      'act-1': { state: 'succeeded', decidedBy: MORGAN, decidedByName: 'Morgan Lee', decidedAt: AT },
      'act-8': {
        state: 'succeeded',
        scanType: 'Full',
        decidedBy: 'slack:U0EXPERT1',
        decidedAt: AT,
      },
    },
  });
}

const texts = (card: unknown): string[] => {
  const out: string[] = [];
  const walk = (node: unknown) => {
    if (Array.isArray(node)) for (const n of node) walk(n);
    else if (node && typeof node === 'object') {
      const o = node as Record<string, unknown>;
      if (o.type === 'TextBlock' && typeof o.text === 'string') out.push(o.text);
      for (const v of Object.values(o)) walk(v);
    }
  };
  walk(card);
  return out;
};

describe('people by name and the antivirus scan choice on the cards', () => {
  it('shows a Teams decider by the name Teams gave, never by the Entra object id', () => {
    const card = renderTeamsCard(buildIncidentView(withScans(), VIEW_OPTIONS), { viewer: 'shared' });
    expect(texts(card)).toContain('Isolated by Morgan Lee at 10:42 UTC');
    expect(JSON.stringify(card)).not.toContain('6f2c0a4e-1111');
    // Slack identities stay as they were.
    expect(texts(card)).toContain('Scanned by @U0EXPERT1 at 10:42 UTC');
  });

  it('escapes a name that looks like markup on both platforms', () => {
    const state = withScans();
    const act1 = state.actions.find((a) => a.id === 'act-1');
    if (act1) act1.decidedByName = '*Morgan* <!channel>';
    const view = buildIncidentView(state, VIEW_OPTIONS);
    expect(texts(renderTeamsCard(view, { viewer: 'shared' }))).toContain(
      'Isolated by \\*Morgan\\* \\<!channel> at 10:42 UTC',
    );
    expect(JSON.stringify(renderSlackMessage(view).blocks)).toContain('&lt;!channel&gt;');
  });

  it('offers Quick (the default) or Full beside Approve on a proposed scan, and says which scan ran', () => {
    const view = buildIncidentView(withScans(), VIEW_OPTIONS);
    const card = renderTeamsCard(view, { viewer: 'expert' });
    expect(validateAdaptiveCard(card)).toEqual([]);
    const choiceSets: Record<string, unknown>[] = [];
    const walk = (node: unknown) => {
      if (Array.isArray(node)) for (const n of node) walk(n);
      else if (node && typeof node === 'object') {
        const o = node as Record<string, unknown>;
        if (o.type === 'Input.ChoiceSet') choiceSets.push(o);
        for (const v of Object.values(o)) walk(v);
      }
    };
    walk(card);
    expect(choiceSets).toEqual([
      {
        type: 'Input.ChoiceSet',
        id: 'scanType:act-7',
        label: 'Scan',
        style: 'compact',
        value: 'Quick',
        spacing: 'Small',
        choices: [
          { title: 'Quick scan', value: 'Quick' },
          { title: 'Full scan', value: 'Full' },
        ],
      },
    ]);
    expect(texts(card)).toContain(`Full antivirus scan on ${SAMPLE.workstation}`);
    // A customer is never offered the choice.
    expect(JSON.stringify(renderTeamsCard(view, { viewer: 'customer' }))).not.toContain('Input.ChoiceSet');

    const slack = renderSlackMessage(view).blocks.filter((b) => b.type === 'actions');
    const scanButtons = slack
      .flatMap((b) => (b as { elements: { action_id: string; value?: string }[] }).elements)
      .filter((e) => e.action_id.startsWith('approve:act-7'));
    expect(scanButtons.map((b) => [b.action_id, JSON.parse(b.value ?? '{}').scanType])).toEqual([
      ['approve:act-7:Quick', 'Quick'],
      ['approve:act-7:Full', 'Full'],
    ]);
  });

  it('lists the identifiers a customer needs on tasks, on the card and in pending', () => {
    const state = incidentState({
      states: {
        'act-1': { state: 'customerPending', excludedBy: 'device group Finance-Workstations' },
        'act-3': { state: 'customerPending', excludedBy: 'user group Executives' },
        'act-4': { state: 'customerPending', excludedBy: 'device group Finance-Workstations' },
      },
    });
    const card = texts(renderTeamsCard(buildIncidentView(state, VIEW_OPTIONS), { viewer: 'customer' }));
    expect(card).toContain(`Device ${SAMPLE.workstation} · device id ${SAMPLE.workstationId}`);
    expect(card).toContain(`Network message id ${SAMPLE.networkMessageId}`);
    expect(card).toContain(`SHA-1 ${SAMPLE.sha1}`);

    const tasks = state.actions.flatMap((a) => taskOf(a) ?? []);
    const teamsList = texts(renderTeamsTaskList(tasks, VIEW_OPTIONS));
    expect(teamsList).toContain(`Network message id ${SAMPLE.networkMessageId}`);
    expect(teamsList).toContain(`SHA-1 ${SAMPLE.sha1}`);
    const slackList = JSON.stringify(renderSlackTaskList(tasks, VIEW_OPTIONS).blocks);
    expect(slackList).toContain(`Device ${SAMPLE.workstation} · device id ${SAMPLE.workstationId}`);
    expect(slackList).toContain(`SHA-1 ${SAMPLE.sha1}`);
  });
});
