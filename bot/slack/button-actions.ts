import type { App, BlockAction, ButtonAction, RespondArguments } from '@slack/bolt';
import { z } from 'zod';
import { ATTR, annotate } from '../../adapters/tracing.js';
import { renderSlackTaskList, renderSlackText } from '../../cards/slack/render.js';
import { BUTTON_VERBS, type ButtonVerb, USE_CASE_OF } from '../../core/button-verbs.js';
import {
  type ActionRef,
  type Actor,
  actionRefSchema,
  type Decision,
  recordRefusal,
} from '../../core/decisions.js';
import { listTasks } from '../../core/list-tasks.js';
import { failureText } from '../failures.js';
import type { Runtime } from '../runtime.js';

/** The Slack buttons decided at once; Skip asks for a reason first, in a modal (skip-modal.ts). */
type SlackVerb = Exclude<ButtonVerb, 'skip'>;
const SLACK_VERBS = BUTTON_VERBS.filter((verb): verb is SlackVerb => verb !== 'skip').join('|');

/**
 * The action ids the card renderer gives decision buttons: `approve:act-1`, `reject:…`, `markDone:…`,
 * `retry:…`, `handover:…`, `runMyself:…` (its confirm dialog is Slack's own, shown before the click is sent).
 */
export const DECISION_ACTION_ID = new RegExp(`^(${SLACK_VERBS}):`);
/** Link buttons (portal, API, Action center): Slack still sends a click, which only needs an ack. */
export const LINK_ACTION_ID = /^open[_:]/;
/** Every action id that is neither a decision, the Skip button (it opens a modal) nor a link button. */
const UNKNOWN_ACTION_ID = new RegExp(`^(?!(${BUTTON_VERBS.join('|')}):|open[_:])`);

/** An approval button's value: the ids and, on an antivirus scan, the scan chosen (checked by the core). */
const approveValueSchema = actionRefSchema.extend({ scanType: z.unknown().optional() });

/** Read a button's value: JSON naming only the incident and the action; anything else is null. */
export function parseButtonValue(value: string | undefined): ActionRef | null {
  const parsed = parseClick('reject', value);
  return parsed.ok ? parsed.ref : null;
}

/**
 * Read a click's value for its verb: the ids, plus the scan type on an approval (as sent: the core
 * decides whether it is a scan it takes). Any other key makes the value invalid, with the reason.
 */
export function parseClick(
  verb: ButtonVerb,
  value: string | undefined,
): { ok: true; ref: ActionRef; choices: { scanType?: unknown } } | { ok: false; reason: string } {
  if (!value) return { ok: false, reason: 'no value' };
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (verb !== 'approve') {
    const parsed = actionRefSchema.safeParse(json);
    return parsed.success
      ? { ok: true, ref: parsed.data, choices: {} }
      : { ok: false, reason: 'invalid ids' };
  }
  const parsed = approveValueSchema.safeParse(json);
  if (!parsed.success) {
    const reason = parsed.error.issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`).join('; ');
    return { ok: false, reason };
  }
  const { scanType, ...ref } = parsed.data;
  return { ok: true, ref, choices: scanType === undefined ? {} : { scanType } };
}

/** An answer only the clicker sees, leaving the card as it is. */
export function ephemeral(text: string): RespondArguments {
  return { response_type: 'ephemeral', replace_original: false, ...renderSlackText(text) };
}

/**
 * Button clicks: read the ids from the value, let the core decide as `slack:<user id>`, then ack. The
 * decision (and any execution job) is recorded before the ack; nothing is executed in the request.
 * Refusals go to the clicker alone; everybody's card is updated by the delivery jobs.
 */
export function registerButtonActions(app: App, runtime: Runtime): void {
  app.action<BlockAction<ButtonAction>>(
    { type: 'block_actions', action_id: DECISION_ACTION_ID },
    async ({ ack, action, body, respond }) => {
      const verb = action.action_id.slice(0, action.action_id.indexOf(':')) as SlackVerb;
      const run = USE_CASE_OF[verb];
      const click = parseClick(verb, action.value);
      if (!click.ok) {
        await ack();
        await recordRefusal(
          runtime.deps,
          { id: `slack:${body.user.id}`, platform: 'slack' },
          verb,
          `not_found: invalid button value (${click.reason}) ${JSON.stringify((action.value ?? '').slice(0, 300))}`,
        );
        runtime.logger.warn(
          { actionId: action.action_id, user: body.user.id, reason: click.reason },
          'slack: invalid button value',
        );
        await respond(
          ephemeral('That button is not valid (it names no action of this bot): nothing was done.'),
        );
        return;
      }
      const { ref, choices } = click;
      annotate({ [ATTR.incidentId]: ref.incidentId, [ATTR.actionId]: ref.actionId, [ATTR.verb]: verb });
      const actor: Actor = { id: `slack:${body.user.id}`, platform: 'slack' };
      let decision: Decision;
      try {
        decision = await run(runtime.deps, ref, actor, choices);
      } catch (error) {
        await ack();
        runtime.logger.error({ err: error, ...ref, verb, actor: actor.id }, 'slack: button decision failed');
        await respond(ephemeral(failureText(error)));
        return;
      }
      await ack();
      if (decision.ok) annotate({ [ATTR.actionType]: decision.action.type });
      if (!decision.ok) {
        await respond(ephemeral(decision.message));
        return;
      }
      // A task list answered to `/mdr pending` is the clicker's own ephemeral message: show it afresh.
      if (verb === 'markDone' && body.container.is_ephemeral === true) {
        const tasks = await listTasks(runtime.deps, 'pending');
        await respond({
          response_type: 'ephemeral',
          replace_original: true,
          ...renderSlackTaskList(tasks, { apiBaseUrl: runtime.config.publicUrl }),
        });
      }
    },
  );
  app.action({ type: 'block_actions', action_id: LINK_ACTION_ID }, async ({ ack }) => {
    await ack();
  });
  // Any other action id is no button of this bot's cards: acknowledged at once (Slack would otherwise
  // wait out its 3 s), refused and audited, so an unknown click never hangs or reaches the core.
  app.action<BlockAction<ButtonAction>>(
    { type: 'block_actions', action_id: UNKNOWN_ACTION_ID },
    async ({ ack, action, body, respond }) => {
      await ack();
      await recordRefusal(
        runtime.deps,
        { id: `slack:${body.user.id}`, platform: 'slack' },
        'click',
        `not_found: unknown button ${JSON.stringify(String(action.action_id).slice(0, 100))}`,
      );
      await respond(ephemeral("That button is not one of this bot's: nothing was done."));
    },
  );
}
