import type { KnownBlock } from '@slack/types';
import { describe, expect, it } from 'vitest';
import { checkSlackLimits, validateAdaptiveCard } from '../../../cards/validate.js';

describe('validateAdaptiveCard', () => {
  it('accepts a small valid card', () => {
    expect(
      validateAdaptiveCard({
        type: 'AdaptiveCard',
        version: '1.5',
        body: [{ type: 'TextBlock', text: 'hi' }],
        actions: [{ type: 'Action.Execute', title: 'Go', verb: 'approve', data: { incidentId: '1' } }],
      }),
    ).toEqual([]);
  });

  it('reports parse errors, unknown elements and leftover template keywords', () => {
    const problems = validateAdaptiveCard({
      type: 'AdaptiveCard',
      version: '1.5',
      body: [
        { type: 'TextBlock', text: 'x', color: 'neon' },
        { type: 'Carousel3D' },
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an unexpanded template keyword is the input.
        { type: 'TextBlock', $when: '${x}', text: 'y' },
      ],
    });
    expect(problems.map((p) => p.path)).toEqual([
      'Parse/InvalidPropertyValue',
      'Parse/UnknownElementType',
      '$.body[2].$when',
    ]);
  });

  it('refuses something that is not a card', () => {
    expect(validateAdaptiveCard({ type: 'Message' })).toHaveLength(1);
  });
});

describe('checkSlackLimits', () => {
  const section = (text: string): KnownBlock => ({ type: 'section', text: { type: 'mrkdwn', text } });

  it('accepts a message inside the limits', () => {
    expect(checkSlackLimits({ text: 'x', blocks: [section('hello')] })).toEqual([]);
  });

  it('reports too many blocks, long sections, headers and buttons, and duplicate ids', () => {
    const blocks: KnownBlock[] = [
      ...Array.from({ length: 50 }, () => section('x')),
      section('y'.repeat(3_001)),
      { type: 'header', text: { type: 'plain_text', text: 'h'.repeat(151) } },
      {
        type: 'actions',
        elements: [
          { type: 'button', action_id: 'a', text: { type: 'plain_text', text: 'b'.repeat(76) } },
          { type: 'button', action_id: 'a', text: { type: 'plain_text', text: 'ok' } },
        ],
      },
    ];
    const messages = checkSlackLimits({ text: 'x', blocks }).map((p) => p.message);
    expect(messages).toEqual([
      '53 blocks (max 50)',
      'section text is 3001 characters (max 3000)',
      'header is 151 characters (max 150)',
      'button text is 76 characters (max 75)',
      'duplicate action_id a',
    ]);
  });

  it('reports too much text in all', () => {
    const blocks = Array.from({ length: 5 }, () => section('z'.repeat(2_900)));
    expect(checkSlackLimits({ text: 'x', blocks })).toEqual([
      { message: 'blocks hold 14500 characters of text (keep under 12000)' },
    ]);
  });
});
