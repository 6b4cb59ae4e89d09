import { describe, expect, it } from 'vitest';
import { mrkdwnToHtml, slackBlocksToHtml, slackMessagePage } from '../../../../bot/preview/slack-html.js';
import { teamsCardPage } from '../../../../bot/preview/teams-card.js';
import { buildIncidentView } from '../../../../cards/incident-view.js';
import { renderSlackMessage } from '../../../../cards/slack/render.js';
import { renderTeamsCard } from '../../../../cards/teams/render.js';
import { everyStateIncident } from '../../../support/incident-factory.js';
import { VIEW_OPTIONS } from '../../cards/scenarios.js';

describe('Slack blocks as HTML', () => {
  it('draws mrkdwn formatting, links and mentions the way Slack does', () => {
    expect(mrkdwnToHtml('*bold* _it_ ~s~ `c` <https://x.example/a?b=1&amp;c=2|site> <@U1> a &amp; b')).toBe(
      '<b>bold</b> <i>it</i> <s>s</s> <code>c</code> <a href="https://x.example/a?b=1&amp;c=2" rel="noopener noreferrer">site</a> <span class="mention">@U1</span> a &amp; b',
    );
  });

  it('escapes everything else and never links to script URLs', () => {
    const html = mrkdwnToHtml('<javascript:alert(1)|x> &lt;script&gt; "q" \'s\'');
    expect(html).toBe('x &lt;script&gt; &quot;q&quot; &#39;s&#39;');
    const raw = slackBlocksToHtml([
      { type: 'header', text: { type: 'plain_text', text: '<img src=x onerror=alert(1)>' } },
      {
        type: 'actions',
        elements: [{ type: 'button', text: { type: 'plain_text', text: 'go' }, url: 'javascript:alert(1)' }],
      },
    ]);
    expect(raw).not.toContain('<img');
    expect(raw).not.toContain('javascript:');
  });

  it('renders a whole message page', () => {
    const message = renderSlackMessage(buildIncidentView(everyStateIncident(), VIEW_OPTIONS));
    const page = slackMessagePage(message, { time: '11:30 AM' });
    expect(page).toContain(
      '<div class="header">🔴 Multi-stage incident involving Initial access &amp; Execution',
    );
    expect(page).toContain('data-action-id="approve:act-10"');
    expect(page).toContain('<b>Awaiting expert approval (3)</b>');
  });
});

describe('Teams card page', () => {
  it('embeds the card so that no text can close the script element', () => {
    const state = everyStateIncident();
    state.incident.title = '</script><script>alert(1)</script>';
    const card = renderTeamsCard(buildIncidentView(state, VIEW_OPTIONS), { viewer: 'shared' });
    const page = teamsCardPage(card, { scriptSrc: '/vendor/adaptivecards.min.js' });
    expect(page).not.toContain('</script><script>alert(1)');
    expect(page).toContain('\\u003c/script\\u003e');
    expect(page).toContain('<script src="/vendor/adaptivecards.min.js"></script>');
  });
});
