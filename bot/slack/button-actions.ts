import type { App, BlockAction, ButtonAction, RespondArguments } from '@slack/bolt';
import { renderSlackTaskList, renderSlackText } from '../../cards/slack/render.js';
import type { ButtonVerb } from '../../cards/view-model.js';
import { type ActionRef, approveAction } from '../../core/approve-action.js';
import { type Actor, actionRefSchema, type Decision, recordRefusal } from '../../core/decisions.js';
import { handOverAction } from '../../core/hand-over-action.js';
import { listTasks } from '../../core/list-tasks.js';
import { markTaskDone } from '../../core/mark-task-done.js';
import type { CoreDeps } from '../../core/ports.js';
import { rejectAction } from '../../core/reject-action.js';
import { retryAction } from '../../core/retry-action.js';
import { runMyself } from '../../core/run-myself.js';
import type { Runtime } from '../runtime.js';
import { failureText } from './errors.js';

/** The Slack buttons; skipping takes a reason, so Slack takes it through the `skip` command. */
type SlackVerb = Exclude<ButtonVerb, 'skip'>;

const USE_CASES: Record<SlackVerb, (deps: CoreDeps, ref: ActionRef, actor: Actor) => Promise<Decision>> = {
  approve: approveAction,
  reject: rejectAction,
  markDone: markTaskDone,
  retry: retryAction,
  handover: handOverAction,
  runMyself,
};

/**
 * The action ids the card renderer gives decision buttons: `approve:act-1`, `reject:…`, `markDone:…`,
 * `retry:…`, `handover:…`, `runMyself:…` (its confirm dialog is Slack's own, shown before the click is sent).
 */
export const DECISION_ACTION_ID = /^(approve|reject|markDone|retry|handover|runMyself):/;
/** Link buttons (portal, API, Action center): Slack still sends a click, which only needs an ack. */
export const LINK_ACTION_ID = /^open[_:]/;
/** Every action id that is neither a decision nor a link button. */
const UNKNOWN_ACTION_ID = /^(?!(approve|reject|markDone|retry|handover|runMyself):|open[_:])/;

/** Read a button's value: JSON naming only the incident and the action; anything else is null. */
export function parseButtonValue(value: string | undefined): ActionRef | null {
  if (!value) return null;
  try {
    const parsed = actionRefSchema.safeParse(JSON.parse(value));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
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
      const run = USE_CASES[verb];
      const ref = parseButtonValue(action.value);
      if (!ref) {
        await recordRefusal(
          runtime.deps,
          { id: `slack:${body.user.id}`, platform: 'slack' },
          verb,
          `not_found: invalid button value ${JSON.stringify(action.value ?? '')}`,
        );
        await ack();
        runtime.logger.warn(
          { actionId: action.action_id, user: body.user.id },
          'slack: invalid button value',
        );
        await respond(
          ephemeral('That button is not valid (it names no action of this bot): nothing was done.'),
        );
        return;
      }
      const actor: Actor = { id: `slack:${body.user.id}`, platform: 'slack' };
      let decision: Decision;
      try {
        decision = await run(runtime.deps, ref, actor);
      } catch (error) {
        await ack();
        runtime.logger.error({ err: error, ...ref, verb, actor: actor.id }, 'slack: button decision failed');
        await respond(ephemeral(failureText(error)));
        return;
      }
      await ack();
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
