import type { ModalView } from '@slack/types';
import { SKIP_REASON_MAX } from '../../core/skip-task.js';
import { taskIdOf } from '../../core/tasks.js';
import { escapeMrkdwn, escapeSlack } from './render.js';

/** The `callback_id` of the modal that asks why a task is skipped (its submissions come back under it). */
export const SKIP_MODAL_CALLBACK_ID = 'skip_task';
/** Where the reason is in a submission: `view.state.values[block][action].value`. */
export const SKIP_REASON_FIELD = { block: 'reason', action: 'reason' } as const;

/**
 * The modal the Skip button opens: one required reason, at most as long as the core keeps. It carries
 * only the task's ids in `private_metadata`; the submission's clicker, role and the task's state are
 * decided again by the core.
 */
export function renderSlackSkipModal(ref: { incidentId: string; actionId: string }): ModalView {
  const taskId = taskIdOf(ref.incidentId, ref.actionId);
  return {
    type: 'modal',
    callback_id: SKIP_MODAL_CALLBACK_ID,
    private_metadata: JSON.stringify({ incidentId: ref.incidentId, actionId: ref.actionId }),
    title: { type: 'plain_text', text: 'Skip task' },
    submit: { type: 'plain_text', text: 'Skip task' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: [
      {
        type: 'section',
        text: {
          type: 'mrkdwn',
          verbatim: true,
          text: `Task *${escapeMrkdwn(taskId)}* will be closed without being done. Your team's reason is shown on the incident card and kept in the audit trail.`,
        },
      },
      {
        type: 'input',
        block_id: SKIP_REASON_FIELD.block,
        label: { type: 'plain_text', text: 'Why is it skipped?' },
        element: {
          type: 'plain_text_input',
          action_id: SKIP_REASON_FIELD.action,
          multiline: true,
          max_length: SKIP_REASON_MAX,
          placeholder: { type: 'plain_text', text: 'e.g. the server was rebuilt from a clean image' },
        },
      },
    ],
  };
}

/** A modal that only tells the person something (a refusal, a failure); it replaces the one submitted. */
export function renderSlackNoticeModal(text: string): ModalView {
  return {
    type: 'modal',
    title: { type: 'plain_text', text: 'Skip task' },
    close: { type: 'plain_text', text: 'Close' },
    blocks: [{ type: 'section', text: { type: 'plain_text', text: escapeSlack(text).slice(0, 2_900) } }],
  };
}
