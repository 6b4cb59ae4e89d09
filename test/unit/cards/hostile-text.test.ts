import { describe, expect, it } from 'vitest';
import { slackBlocksToHtml } from '../../../bot/preview/slack-html.js';
import { buildIncidentView } from '../../../cards/incident-view.js';
import { renderSlackMessage } from '../../../cards/slack/render.js';
import { renderTeamsCard } from '../../../cards/teams/render.js';
import { checkSlackLimits, validateAdaptiveCard } from '../../../cards/validate.js';
import type { IncidentState } from '../../../core/model.js';
import { incidentState } from '../../support/incident-factory.js';
import { VIEW_OPTIONS } from './scenarios.js';

const LONG_WORD = 'A'.repeat(10_000);
const RTL = 'مرحبا بالعالم שלום';
// biome-ignore lint/suspicious/noTemplateCurlyInString: template syntax in incident text is the hostile input under test.
const SECRET = '${secret}';
const HOSTILE = `${SECRET} <!channel> <@U123> [click](javascript:alert(1)) *bold* _it_ ~s~ \`code\` <script>alert(1)</script> <http://evil.example|docs> ${RTL} 🔥👩‍💻 \u202Eevil`;

function hostileIncident(): IncidentState {
  const state = incidentState({
    states: {
      'act-2': { decidedBy: 'slack:<!channel>' },
      'act-3': { state: 'customerPending', excludedBy: HOSTILE },
      'act-4': { state: 'failed', error: HOSTILE },
      'act-1': { state: 'skippedByCustomer', skippedBy: 'slack:<!channel>', skipReason: HOSTILE },
    },
  });
  const { incident, actions } = state;
  incident.title = `${HOSTILE} ${LONG_WORD}`;
  incident.summary = `${HOSTILE}\n\n${LONG_WORD}`;
  incident.devices[0]!.dnsName = `${HOSTILE}${LONG_WORD}`;
  incident.users[0]!.displayName = HOSTILE;
  incident.messages[0]!.subject = HOSTILE;
  incident.files[0]!.name = HOSTILE;
  actions[0]!.target.deviceName = HOSTILE;
  actions[0]!.reason = HOSTILE;
  actions[2]!.target.recipient = `${LONG_WORD}@contoso.com`;
  return state;
}

function strings(node: unknown, out: string[] = []): string[] {
  if (typeof node === 'string') out.push(node);
  else if (Array.isArray(node)) for (const n of node) strings(n, out);
  else if (node && typeof node === 'object') for (const v of Object.values(node)) strings(v, out);
  return out;
}

describe('hostile incident text', () => {
  const view = buildIncidentView(hostileIncident(), VIEW_OPTIONS);

  describe('on Teams', () => {
    const cards = (['shared', 'expert', 'customer', 'other'] as const).map((viewer) =>
      renderTeamsCard(view, { viewer, notice: HOSTILE }),
    );

    it('keeps template syntax literal: the secret placeholder is never evaluated', () => {
      for (const card of cards) expect(JSON.stringify(card)).toContain(SECRET);
    });

    it('escapes markdown so links and emphasis stay literal', () => {
      for (const card of cards) {
        const texts = strings(card.body);
        expect(texts.some((t) => t.includes('\\[click\\](javascript:alert(1))'))).toBe(true);
        for (const t of texts) {
          expect(t).not.toMatch(/(^|[^\\])\[[^\]]*[^\\]\]\(/);
          expect(t).not.toMatch(/(^|[^\\])\*bold/);
          expect(t).not.toMatch(/(^|[^\\])<script/);
          expect(t).not.toContain('\u202E');
        }
      }
    });

    it('links only to http(s) addresses', () => {
      for (const card of cards) {
        const urls: string[] = [];
        JSON.stringify(card, (key, value) => {
          if (key === 'url') urls.push(value);
          return value;
        });
        for (const url of urls) expect(url).toMatch(/^https:\/\//);
      }
    });

    it('keeps RTL text and emoji, cuts 10,000-character words, and stays a valid card', () => {
      for (const card of cards) {
        const json = JSON.stringify(card);
        expect(json).toContain(RTL);
        expect(json).toContain('🔥👩‍💻');
        expect(json).not.toContain('A'.repeat(300));
        expect(Buffer.byteLength(json)).toBeLessThanOrEqual(28_000);
        expect(validateAdaptiveCard(card)).toEqual([]);
      }
    });
  });

  describe('on Slack', () => {
    const message = renderSlackMessage(view, { notice: HOSTILE });
    const texts = strings(message.blocks).concat(message.text);
    const mrkdwn: string[] = [message.text];
    JSON.stringify(message.blocks, (_key, value) => {
      if (value && value.type === 'mrkdwn') mrkdwn.push(value.text);
      return value;
    });

    it('never makes a mention, a channel ping or a link', () => {
      for (const t of texts.filter((t) => !t.startsWith('https://') && !t.startsWith('{"'))) {
        expect(t).not.toContain('<');
        expect(t).not.toContain('>');
      }
      expect(JSON.stringify(message)).toContain('&lt;!channel&gt;');
      expect(JSON.stringify(message)).toContain('&lt;@U123&gt;');
    });

    it('keeps mrkdwn markers from formatting', () => {
      expect(mrkdwn.length).toBeGreaterThan(10);
      for (const t of mrkdwn) {
        expect(t).not.toContain('*bold*');
        expect(t).not.toContain('_it_');
        expect(t).not.toContain('~s~');
        expect(t).not.toContain('`code`');
      }
    });

    it('keeps the secret placeholder, RTL text and emoji literally and stays inside the limits', () => {
      const json = JSON.stringify(message);
      expect(json).toContain(SECRET);
      expect(json).toContain(RTL);
      expect(json).toContain('🔥👩‍💻');
      expect(json).not.toContain('A'.repeat(300));
      expect(checkSlackLimits(message)).toEqual([]);
    });

    it('draws as literal text in the HTML preview', () => {
      const html = slackBlocksToHtml(message.blocks);
      expect(html).not.toContain('<script>');
      expect(html).not.toMatch(/<a [^>]*href="(?!https:)/);
      expect(html).toContain('&lt;script&gt;');
      expect(html).toContain('&lt;!channel&gt;');
      expect(html).not.toContain('<b>bold</b>');
    });
  });
});
