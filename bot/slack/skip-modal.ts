import type { App, BlockAction, ButtonAction, ViewSubmitAction } from '@slack/bolt';
import type { z } from 'zod';
import {
  renderSlackNoticeModal,
  renderSlackSkipModal,
  SKIP_MODAL_CALLBACK_ID,
  SKIP_REASON_FIELD,
} from '../../cards/slack/skip-modal.js';
import { USE_CASE_OF } from '../../core/button-verbs.js';
import { type Actor, actionRefSchema, recordRefusal } from '../../core/decisions.js';
import { failureText } from '../failures.js';
import type { Runtime } from '../runtime.js';
import { ephemeral, parseButtonValue } from './button-actions.js';

/** The Skip button on a customer task: `skip:act-3`. */
export const SKIP_ACTION_ID = /^skip:/;

/** The ids the modal carries; only ever read back as a reference the core looks up and decides on. */
function refOf(privateMetadata: string): z.infer<typeof actionRefSchema> | null {
  try {
    const parsed = actionRefSchema.safeParse(JSON.parse(privateMetadata));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/**
 * Skip with a reason on Slack: the Skip button opens a modal (`views.open` with the click's
 * `trigger_id`) asking why; its submission, once the workspace guard has checked it comes from this
 * bot's workspace, has the core skip the task as `slack:<submitter>`. The ids come back in
 * `private_metadata`, never trusted for more than naming the task: the core checks the submitter's role
 * and the task's state again. A blank reason keeps the modal open with the error under the field;
 * a refusal replaces the modal with the reason, so only the submitter sees it.
 */
export function registerSkipModal(app: App, runtime: Runtime): void {
  app.action<BlockAction<ButtonAction>>(
    { type: 'block_actions', action_id: SKIP_ACTION_ID },
    async ({ ack, action, body, client, respond }) => {
      await ack();
      const ref = parseButtonValue(action.value);
      const actor: Actor = { id: `slack:${body.user.id}`, platform: 'slack' };
      if (!ref) {
        await recordRefusal(
          runtime.deps,
          actor,
          'skip',
          `not_found: invalid button value ${JSON.stringify((action.value ?? '').slice(0, 300))}`,
        );
        await respond(ephemeral('That button names no task of this bot: nothing was done.'));
        return;
      }
      try {
        await client.views.open({ trigger_id: body.trigger_id, view: renderSlackSkipModal(ref) });
      } catch (error) {
        runtime.logger.error({ err: error, ...ref, actor: actor.id }, 'slack: could not open the Skip modal');
        await respond(
          ephemeral(
            `Slack did not open the form: nothing was done. Try again, or use /mdr skip ${ref.incidentId}:${ref.actionId} <reason>.`,
          ),
        );
      }
    },
  );

  app.view<ViewSubmitAction>(
    { type: 'view_submission', callback_id: SKIP_MODAL_CALLBACK_ID },
    async ({ ack, body, view }) => {
      const actor: Actor = { id: `slack:${body.user.id}`, platform: 'slack' };
      const ref = refOf(view.private_metadata);
      if (!ref) {
        await recordRefusal(
          runtime.deps,
          actor,
          'skip',
          `not_found: invalid modal metadata ${JSON.stringify(view.private_metadata.slice(0, 300))}`,
        );
        await ack({
          response_action: 'update',
          view: renderSlackNoticeModal('This form names no task of this bot: nothing was done.'),
        });
        return;
      }
      const typed = view.state.values[SKIP_REASON_FIELD.block]?.[SKIP_REASON_FIELD.action]?.value ?? '';
      try {
        // The core decides (a blank reason is refused and audited there); a refusal about the reason is
        // shown under the field, so the customer can type one and send again.
        const decision = await USE_CASE_OF.skip(runtime.deps, ref, actor, { reason: typed });
        if (decision.ok) {
          await ack({ response_action: 'clear' });
          return;
        }
        if (typed.trim() === '') {
          await ack({ response_action: 'errors', errors: { [SKIP_REASON_FIELD.block]: decision.message } });
          return;
        }
        await ack({
          response_action: 'update',
          view: renderSlackNoticeModal(`Not skipped: ${decision.message}`),
        });
      } catch (error) {
        runtime.logger.error({ err: error, ...ref, actor: actor.id }, 'slack: skip from the modal failed');
        await ack({ response_action: 'update', view: renderSlackNoticeModal(failureText(error)) });
      }
    },
  );
}
