import { createRequire } from 'node:module';
import type { KnownBlock } from '@slack/types';

interface ValidationEventLike {
  phase: number;
  event: number;
  message: string;
}

interface AdaptiveCardsModule {
  AdaptiveCard: new () => {
    parse(json: unknown, context: unknown): void;
    validateProperties(): { validationEvents: ValidationEventLike[] };
  };
  SerializationContext: new () => { eventCount: number; getEventAt(i: number): ValidationEventLike };
  ValidationEvent: Record<number, string>;
  ValidationPhase: Record<number, string>;
}

// adaptivecards 3 cannot be imported by Node from its main entry (microsoft/AdaptiveCards#9155);
// its UMD bundle can be required and parses and validates without a DOM. It is loaded on the first
// validation only: the bot renders cards without it (the card tests validate what the renderers draw),
// and the Slack renderer imports this module for checkSlackLimits.
let adaptiveCards: AdaptiveCardsModule | undefined;
function loadAdaptiveCards(): AdaptiveCardsModule {
  adaptiveCards ??= createRequire(import.meta.url)(
    'adaptivecards/dist/adaptivecards.js',
  ) as AdaptiveCardsModule;
  return adaptiveCards;
}

/** A problem found in a card or a message: where and what. */
export interface CardProblem {
  path?: string;
  message: string;
}

/**
 * Validate an Adaptive Card with the official `adaptivecards` parser: parse-time events (unknown types,
 * invalid values) and validation events (missing or duplicate properties). Empty when the card is valid.
 */
export function validateAdaptiveCard(card: unknown): CardProblem[] {
  const problems: CardProblem[] = [];
  const json = card as { type?: unknown; version?: unknown };
  if (!json || typeof json !== 'object' || json.type !== 'AdaptiveCard') {
    return [{ message: 'not an AdaptiveCard (type must be "AdaptiveCard")' }];
  }
  const AC = loadAdaptiveCards();
  const parsed = new AC.AdaptiveCard();
  const context = new AC.SerializationContext();
  parsed.parse(card, context);
  const events: ValidationEventLike[] = [];
  for (let i = 0; i < context.eventCount; i++) events.push(context.getEventAt(i));
  events.push(...parsed.validateProperties().validationEvents);
  for (const e of events) {
    const kind = AC.ValidationEvent[e.event] ?? `event ${e.event}`;
    if (kind === 'Hint') continue;
    problems.push({ path: `${AC.ValidationPhase[e.phase] ?? e.phase}/${kind}`, message: e.message });
  }
  problems.push(...templateLeftovers(card));
  return problems;
}

/**
 * Template keywords (`$data`, `$when`) or nulls left in a card mean it was not expanded (or expanded
 * from incomplete data). A string such as `${x}` is not flagged: it may be incident text shown literally.
 */
function templateLeftovers(card: unknown): CardProblem[] {
  const out: CardProblem[] = [];
  const walk = (node: unknown, path: string) => {
    if (Array.isArray(node)) {
      for (const [i, n] of node.entries()) walk(n, `${path}[${i}]`);
    } else if (node && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if (k.startsWith('$') && k !== '$schema')
          out.push({ path: `${path}.${k}`, message: 'template keyword left' });
        walk(v, `${path}.${k}`);
      }
    } else if (node === null) out.push({ path, message: 'null value' });
  };
  walk(card, '$');
  return out;
}

/** Block Kit limits (from @slack/types and Slack's answers); the total is kept well under ~13.2k. */
export const SLACK_LIMITS = {
  blocks: 50,
  sectionText: 3_000,
  sectionField: 2_000,
  sectionFields: 10,
  header: 150,
  buttonText: 75,
  buttonValue: 2_000,
  buttonUrl: 3_000,
  actionId: 255,
  blockId: 255,
  actionsElements: 25,
  contextElements: 10,
  contextText: 3_000,
  confirmTitle: 100,
  confirmText: 300,
  confirmButton: 30,
  messageText: 40_000,
  totalBlockText: 12_000,
} as const;

type AnyBlock = KnownBlock & Record<string, unknown>;
type TextObject = { type: string; text: string };

/** Problems of a Slack message against Block Kit limits; empty when Slack will take it. */
export function checkSlackLimits(
  message: { text?: string; blocks?: KnownBlock[] },
  limits: Partial<Record<keyof typeof SLACK_LIMITS, number>> = {},
): CardProblem[] {
  const L = { ...SLACK_LIMITS, ...limits };
  const problems: CardProblem[] = [];
  const blocks = (message.blocks ?? []) as AnyBlock[];
  const over = (path: string, what: string, value: string | undefined, max: number) => {
    if (value !== undefined && value.length > max)
      problems.push({ path, message: `${what} is ${value.length} characters (max ${max})` });
  };
  if (blocks.length > L.blocks) problems.push({ message: `${blocks.length} blocks (max ${L.blocks})` });
  over('text', 'message text', message.text, L.messageText);
  let total = 0;
  const count = (t: TextObject | undefined) => {
    if (t && typeof t.text === 'string') total += t.text.length;
  };
  const blockIds = new Set<string>();
  const actionIds = new Set<string>();

  blocks.forEach((block, i) => {
    const at = `blocks[${i}]`;
    const blockId = block.block_id as string | undefined;
    if (blockId !== undefined) {
      over(`${at}.block_id`, 'block_id', blockId, L.blockId);
      if (blockIds.has(blockId))
        problems.push({ path: `${at}.block_id`, message: `duplicate block_id ${blockId}` });
      blockIds.add(blockId);
    }
    const elementChecks = (el: Record<string, unknown>, path: string) => {
      const actionId = el.action_id as string | undefined;
      if (actionId !== undefined) {
        over(`${path}.action_id`, 'action_id', actionId, L.actionId);
        if (actionIds.has(actionId)) problems.push({ path, message: `duplicate action_id ${actionId}` });
        actionIds.add(actionId);
      }
      if (el.type === 'button') {
        const text = el.text as TextObject | undefined;
        if (text?.type !== 'plain_text') problems.push({ path, message: 'button text must be plain_text' });
        over(`${path}.text`, 'button text', text?.text, L.buttonText);
        over(`${path}.value`, 'button value', el.value as string | undefined, L.buttonValue);
        over(`${path}.url`, 'button url', el.url as string | undefined, L.buttonUrl);
        count(text);
        const confirm = el.confirm as Record<string, TextObject> | undefined;
        if (confirm) {
          over(`${path}.confirm.title`, 'confirm title', confirm.title?.text, L.confirmTitle);
          over(`${path}.confirm.text`, 'confirm text', confirm.text?.text, L.confirmText);
          over(`${path}.confirm.confirm`, 'confirm button', confirm.confirm?.text, L.confirmButton);
          over(`${path}.confirm.deny`, 'deny button', confirm.deny?.text, L.confirmButton);
          for (const t of Object.values(confirm)) count(t);
        }
      }
    };
    switch (block.type) {
      case 'header': {
        const text = block.text as TextObject;
        if (text?.type !== 'plain_text')
          problems.push({ path: at, message: 'header text must be plain_text' });
        over(`${at}.text`, 'header', text?.text, L.header);
        count(text);
        break;
      }
      case 'section': {
        const text = block.text as TextObject | undefined;
        const fields = block.fields as TextObject[] | undefined;
        if (!text && !fields?.length) problems.push({ path: at, message: 'section needs text or fields' });
        over(`${at}.text`, 'section text', text?.text, L.sectionText);
        if (text && text.text.length === 0) problems.push({ path: at, message: 'empty section text' });
        count(text);
        if (fields) {
          if (fields.length > L.sectionFields)
            problems.push({ path: at, message: `${fields.length} fields (max ${L.sectionFields})` });
          fields.forEach((f, j) => {
            over(`${at}.fields[${j}]`, 'section field', f.text, L.sectionField);
            count(f);
          });
        }
        if (block.accessory)
          elementChecks(block.accessory as unknown as Record<string, unknown>, `${at}.accessory`);
        break;
      }
      case 'context': {
        const elements = (block.elements as TextObject[]) ?? [];
        if (elements.length === 0 || elements.length > L.contextElements)
          problems.push({
            path: at,
            message: `${elements.length} context elements (1-${L.contextElements})`,
          });
        elements.forEach((e, j) => {
          over(`${at}.elements[${j}]`, 'context text', e.text, L.contextText);
          count(e);
        });
        break;
      }
      case 'actions': {
        const elements = (block.elements as unknown as Record<string, unknown>[]) ?? [];
        if (elements.length === 0 || elements.length > L.actionsElements)
          problems.push({
            path: at,
            message: `${elements.length} actions elements (1-${L.actionsElements})`,
          });
        elements.forEach((e, j) => {
          elementChecks(e, `${at}.elements[${j}]`);
        });
        break;
      }
      default:
        break;
    }
  });
  if (total > L.totalBlockText)
    problems.push({ message: `blocks hold ${total} characters of text (keep under ${L.totalBlockText})` });
  return problems;
}
