import type { KnownBlock } from '@slack/types';
import { describe, expect, it } from 'vitest';
import { buildIncidentView } from '../../../cards/incident-view.js';
import {
  escapeMrkdwn,
  escapeSlack,
  renderSlackMessage,
  renderSlackTaskList,
  renderSlackText,
} from '../../../cards/slack/render.js';
import { checkSlackLimits } from '../../../cards/validate.js';
import { taskOf } from '../../../core/tasks.js';
import {
  everyStateIncident,
  failedWithClosedTasksIncident,
  incidentState,
  SAMPLE,
  SAMPLE_NOW,
} from '../../support/incident-factory.js';
import { SCENARIOS, VIEW_OPTIONS } from './scenarios.js';

type Json = Record<string, unknown>;

function buttons(blocks: KnownBlock[]): Json[] {
  return blocks.flatMap((b) => (b.type === 'actions' ? (b.elements as unknown as Json[]) : []));
}

describe('renderSlackMessage', () => {
  describe.each(SCENARIOS)('%s', (_name, build) => {
    const view = buildIncidentView(build(), VIEW_OPTIONS);

    it('matches the snapshot', () => {
      expect(renderSlackMessage(view)).toMatchSnapshot();
    });

    it('stays inside the Block Kit limits', () => {
      expect(checkSlackLimits(renderSlackMessage(view, { notice: 'Approved.' }))).toEqual([]);
    });
  });

  it('names the action and the incident id in button ids and values only', () => {
    const message = renderSlackMessage(buildIncidentView(everyStateIncident(), VIEW_OPTIONS));
    const clickable = buttons(message.blocks).filter((b) => !b.url);
    expect(clickable.map((b) => b.action_id)).toEqual([
      'retry:act-7',
      'handover:act-7',
      'approve:act-10',
      'reject:act-10',
      'markDone:act-5',
      'markDone:act-3',
      'runMyself:act-3',
      'skip:act-3',
    ]);
    // Slack's own confirm dialog comes before Retry and Run it myself; Skip opens a modal asking why.
    const byId = new Map(clickable.map((b) => [b.action_id, b as { confirm?: { confirm: Json } }]));
    expect(byId.get('retry:act-7')?.confirm?.confirm.text).toBe('Retry');
    expect(byId.get('runMyself:act-3')?.confirm?.confirm.text).toBe('Run it');
    expect(byId.get('skip:act-3')?.confirm).toBeUndefined();
    expect(byId.get('handover:act-7')?.confirm).toBeUndefined();
    for (const b of clickable) {
      const value = JSON.parse(b.value as string);
      expect(Object.keys(value).sort()).toEqual(['actionId', 'incidentId']);
      expect(b.action_id).toBe(`${String(b.action_id).split(':')[0]}:${value.actionId}`);
    }
  });

  it('shows failures first with their reason, then the closed tasks under "Done by your team"', () => {
    const message = renderSlackMessage(buildIncidentView(failedWithClosedTasksIncident(), VIEW_OPTIONS));
    const texts = message.blocks.flatMap((b) => (b.type === 'section' && b.text ? [b.text.text] : []));
    const titles = texts.filter((t) => /^\*[^*]+ \(\d+\)\*$/.test(t));
    expect(titles).toEqual(['*Failed (1)*', '*Completed by experts (1)*', '*Done by your team (2)*']);
    const failure = texts[texts.indexOf('*Failed (1)*') + 1];
    expect(failure).toContain('❌ *Isolate device fin-wks-0142.corp.contoso.com*\nFailed at 10:58 UTC');
    expect(failure).toContain('• Reason: Defender: Failed (the device has not reported in for 7 days)');
    const done = texts[texts.indexOf('*Done by your team (2)*') + 1];
    expect(done).toContain('Skipped by @U0CUSTOMER1 at 11:20 UTC');
    expect(done).toContain('• Reason: the workstation was reimaged by our IT team');
    expect(texts.some((t) => t.startsWith('*Pending customer actions'))).toBe(false);
    expect(message.text).toContain('(In progress)');
  });

  it('counts open work only in the context line', () => {
    const context = (state: ReturnType<typeof everyStateIncident>) => {
      const block = renderSlackMessage(buildIncidentView(state, VIEW_OPTIONS)).blocks.find(
        (b) => b.type === 'context',
      );
      return JSON.stringify(block);
    };
    expect(context(everyStateIncident())).toContain(
      '⏳ *In progress*  ·  1 failed  ·  4 for the experts  ·  1 for your team  ·  Incident',
    );
    expect(context(failedWithClosedTasksIncident())).toContain('⏳ *In progress*  ·  1 failed  ·  Incident');
  });

  it('asks for confirmation before a destructive approval, naming the asset', () => {
    const message = renderSlackMessage(buildIncidentView(incidentState(), VIEW_OPTIONS));
    const approve = buttons(message.blocks).filter((b) => String(b.action_id).startsWith('approve:'));
    const isolate = approve.find((b) => b.action_id === 'approve:act-1') as Json & { confirm: Json };
    expect(JSON.stringify(isolate.confirm)).toContain(SAMPLE.workstation);
    const quarantine = approve.find((b) => b.action_id === 'approve:act-4');
    expect(quarantine?.confirm).toBeUndefined();
    const softDelete = approve.find((b) => b.action_id === 'approve:act-3') as Json & { confirm: Json };
    expect(JSON.stringify(softDelete.confirm)).toContain(SAMPLE.bea);
  });

  it('links to the portal and the API with URL buttons', () => {
    const message = renderSlackMessage(buildIncidentView(incidentState(), VIEW_OPTIONS));
    const links = buttons(message.blocks).filter((b) => b.url);
    expect(links.map((b) => b.url)).toEqual([
      'https://security.microsoft.com/incidents/48213?tid=7f3c2a10-5b1e-4c8d-9a6f-2e4b8d1c0a55',
      'https://mdr-bot.contoso.com/api/incidents/48213',
    ]);
  });

  it('shows a notice first', () => {
    const message = renderSlackMessage(buildIncidentView(incidentState(), VIEW_OPTIONS), {
      notice: 'Isolate device fin-wks-0142 is excluded by <!channel>',
    });
    expect(message.blocks[0]).toEqual({
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: '⚠️ Isolate device fin-wks-0142 is excluded by &lt;!channel&gt;',
        verbatim: true,
      },
    });
  });

  it('has notification text naming severity, incident and status', () => {
    const message = renderSlackMessage(buildIncidentView(incidentState(), VIEW_OPTIONS));
    expect(message.text).toMatch(/^High severity incident 48213: Multi-stage incident .* \(In progress\)$/);
    expect(message.text).toContain('Initial access &amp; Execution');
  });
});

describe('renderSlackTaskList', () => {
  it('lists tasks with a Mark done button each', () => {
    const tasks = everyStateIncident().actions.flatMap((a) => taskOf(a) ?? []);
    const message = renderSlackTaskList(tasks, {
      now: SAMPLE_NOW,
      apiBaseUrl: 'https://mdr-bot.contoso.com',
    });
    expect(message).toMatchSnapshot();
    expect(checkSlackLimits(message)).toEqual([]);
    expect(
      buttons(message.blocks)
        .filter((b) => !b.url)
        .map((b) => [b.action_id, b.value]),
    ).toEqual([['markDone:act-3', '{"incidentId":"48213","actionId":"act-3"}']]);
  });

  it('stays inside the limits with hundreds of tasks', () => {
    const base = taskOf({ ...everyStateIncident().actions[2]!, state: 'customerPending' });
    const tasks = Array.from({ length: 300 }, (_, i) => ({
      ...base!,
      id: `48213:t-${i}`,
      actionId: `t-${i}`,
    }));
    const message = renderSlackTaskList(tasks, { now: SAMPLE_NOW });
    expect(checkSlackLimits(message)).toEqual([]);
    expect(JSON.stringify(message.blocks)).toContain('more: see the full list');
  });
});

describe('Slack escaping', () => {
  it('turns control characters into entities', () => {
    expect(escapeSlack('<!channel> & <@U123> <http://x|y>')).toBe(
      '&lt;!channel&gt; &amp; &lt;@U123&gt; &lt;http://x|y&gt;',
    );
  });

  it('keeps formatting characters from formatting', () => {
    const escaped = escapeMrkdwn('*bold* _it_ ~s~ `code`');
    expect(escaped).not.toMatch(/\*bold\*|_it_|~s~|`code`/);
    expect(escaped.replace(/\u200B/g, '')).toBe('*bold* _it_ ~s~ `code`');
  });

  it('renders a plain reply escaped', () => {
    expect(renderSlackText('Done <@U1>')).toEqual({
      text: 'Done &lt;@U1&gt;',
      blocks: [{ type: 'section', text: { type: 'mrkdwn', text: 'Done &lt;@U1&gt;', verbatim: true } }],
    });
  });
});
