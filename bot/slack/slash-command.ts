import type { App, RespondArguments } from '@slack/bolt';
import { escapeMrkdwn, escapeSlack, renderSlackTaskList, renderSlackText } from '../../cards/slack/render.js';
import type { Actor } from '../../core/decisions.js';
import { type CommandPlace, type CommandReply, replyText, runCommand } from '../commands.js';
import { failureText } from '../failures.js';
import type { Runtime } from '../runtime.js';

/** The fixed slash command. */
export const SLASH_COMMAND = '/mdr';

/** Past this, the command is acknowledged with "working on it" and answered through the response URL. */
const ACK_BUDGET_MS = 2_000;

/** The Slack message a command reply becomes: for everyone when it changed shared state, else ephemeral. */
export function commandMessage(
  reply: CommandReply,
  options: { apiBaseUrl?: string; socChannel?: string } = {},
): RespondArguments {
  const { apiBaseUrl, socChannel } = options;
  let message =
    reply.kind === 'tasks'
      ? renderSlackTaskList(reply.tasks, apiBaseUrl ? { apiBaseUrl } : {})
      : renderSlackText(replyText(reply));
  if (reply.kind === 'refused' && reply.refusal.code === 'wrong_place') {
    // The channel mention is Slack markup: it must not go through the escaping the rest of the text does.
    const where = socChannel && /^[A-Z0-9]+$/.test(socChannel) ? `<#${socChannel}>` : 'the SOC channel';
    const tail = ` Use ${SLASH_COMMAND} in ${where} or in a direct message with the bot.`;
    const text = replyText(reply);
    message = {
      text: `${escapeSlack(text)}${tail}`,
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', text: `${escapeMrkdwn(text)}${tail}`, verbatim: true } },
      ],
    };
  }
  return { response_type: reply.shared ? 'in_channel' : 'ephemeral', ...message };
}

/** Where a slash command was sent: the policy's SOC channel, a direct message with the bot, or elsewhere. */
export function placeOf(channelId: string, socChannel: string | undefined): CommandPlace {
  if (socChannel && channelId === socChannel) return 'socChannel';
  // Direct-message channel ids start with D; group DMs (G / mpim) are not direct messages with the bot.
  return /^D[A-Z0-9]+$/.test(channelId) ? 'direct' : 'elsewhere';
}

/**
 * `/mdr <words>`: the chat commands run through the core as `slack:<user id>`. The answer is the ack
 * itself when the core is done within the budget (nearly always), else it follows on the response URL.
 */
export function registerSlashCommand(app: App, runtime: Runtime): void {
  app.command(SLASH_COMMAND, async ({ ack, command, respond }) => {
    const actor: Actor = { id: `slack:${command.user_id}`, platform: 'slack' };
    const socChannel = runtime.config.policy.channels.slack;
    const place = placeOf(command.channel_id, socChannel);
    const running = runCommand(runtime.deps, command.text, actor, place).then(
      (reply) => commandMessage(reply, { apiBaseUrl: runtime.config.publicUrl, socChannel }),
      (error: unknown): RespondArguments => {
        runtime.logger.error({ err: error, actor: actor.id }, 'slack: /mdr command failed');
        return { response_type: 'ephemeral', ...renderSlackText(failureText(error)) };
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const slow = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), ACK_BUDGET_MS);
    });
    const first = await Promise.race([running, slow]);
    clearTimeout(timer);
    if (first) {
      await ack(first);
      return;
    }
    await ack({ response_type: 'ephemeral', text: 'Working on it…' });
    await respond(await running);
  });
}
