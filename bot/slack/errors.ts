import { webApi } from '@slack/bolt';

/** Slack Web API errors that no retry will cure: each with what the operator must change. */
const PERMANENT: Record<string, string> = {
  invalid_auth:
    'SLACK_BOT_TOKEN is not valid: copy the Bot User OAuth Token (xoxb-...) from Slack app > OAuth & Permissions',
  not_authed: 'SLACK_BOT_TOKEN is missing: set it from Slack app > OAuth & Permissions',
  account_inactive: 'the bot token belongs to a deactivated account: reinstall the Slack app',
  token_revoked: 'the bot token was revoked: reinstall the Slack app and set the new SLACK_BOT_TOKEN',
  token_expired: 'the bot token expired: reinstall the Slack app and set the new SLACK_BOT_TOKEN',
  missing_scope:
    'the app lacks a scope: add the scopes of manifest/slack/manifest.yaml and reinstall the app',
  no_permission: 'the workspace does not allow the app to post there: ask a Slack admin',
  not_in_channel: 'the bot is not in the channel: /invite the bot there, or add the chat:write.public scope',
  channel_not_found:
    'channels.slack in the policy file names no channel the bot can see: use the channel id (C0...) and invite the bot to private channels',
  is_archived: 'the channel of channels.slack is archived: name another one in the policy file',
  restricted_action: 'the workspace restricts posting in that channel: ask a Slack admin',
  invalid_blocks: 'Slack refused the card layout: report this with the incident id',
  invalid_blocks_format: 'Slack refused the card layout: report this with the incident id',
  msg_too_long: 'the card was too long for Slack: report this with the incident id',
  msg_blocks_too_long: 'the card was too long for Slack: report this with the incident id',
  message_not_found: 'the card was deleted in Slack; it will not be posted again for this incident',
  cant_update_message: 'the card is not a message of this bot; it cannot be updated',
  edit_window_closed: 'the workspace does not allow editing messages this old',
};

/** What went wrong in a Slack Web API call, classified for the delivery job. */
export type SlackFailure =
  | { kind: 'rateLimited'; retryAfterSeconds: number }
  | { kind: 'permanent'; code: string; fix: string }
  | { kind: 'transient' };

/** Classify an error thrown by `@slack/web-api`: rate limited, permanent (with the fix), or worth a retry. */
export function classifySlackFailure(error: unknown): SlackFailure {
  if (error instanceof webApi.WebAPIRateLimitedError)
    return { kind: 'rateLimited', retryAfterSeconds: Math.max(1, error.retryAfter) };
  if (error instanceof webApi.WebAPIPlatformError) {
    const code = error.data.error ?? 'unknown';
    const fix = PERMANENT[code];
    if (fix) return { kind: 'permanent', code, fix };
  }
  return { kind: 'transient' };
}
