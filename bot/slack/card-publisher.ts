import type { webApi } from '@slack/bolt';
import { ATTR, withClientSpan } from '../../adapters/tracing.js';
import { describeAction } from '../../cards/assets.js';
import { buildIncidentView } from '../../cards/incident-view.js';
import { renderSlackMessage, renderSlackText } from '../../cards/slack/render.js';
import { MdrError } from '../../core/errors.js';
import type { CardRefs, IncidentState, Task } from '../../core/model.js';
import { type CardPublisher, type DeliveryContext, recordPosted } from '../delivery.js';
import type { Runtime } from '../runtime.js';
import type { SlackCardCalls } from './card-api.js';
import { classifySlackFailure } from './errors.js';

/** The pause name of a Slack channel (shared by every replica through the store). */
export const slackChannelPause = (channel: string) => `slack:${channel}`;

/**
 * Posts each incident's card once to `channels.slack` and updates that same message in place after.
 * Runs inside the delivery jobs (one at a time per incident, under the delivery lease). The Web API
 * client does not retry: a 429 pauses the channel for Retry-After on every replica and the delivery is
 * queued again for then, other transient failures fail the job so the queue retries it, and permanent
 * ones are logged with their fix.
 */
export class SlackCardPublisher implements CardPublisher {
  readonly platform = 'slack' as const;
  private warnedNoChannel = false;
  /**
   * Cards Slack posted whose message ts could not be stored (Redis away at that moment), by incident:
   * the next delivery of the incident in this process stores it and updates that message instead of
   * posting a second card.
   */
  private readonly unrecorded = new Map<string, { channel: string; ts: string }>();
  /** The card posts and updates (`SlackCardApi` in the bot; the Web API client when not given). */
  private readonly cards: SlackCardCalls;

  constructor(
    private readonly client: webApi.WebClient,
    private readonly token: string,
    private readonly runtime: Pick<Runtime, 'config' | 'store' | 'logger' | 'clock'>,
    cards?: SlackCardCalls,
  ) {
    this.cards = cards ?? {
      postMessage: (args) => client.chat.postMessage(args as never),
      update: (args) => client.chat.update(args as never),
    };
  }

  async deliver(state: IncidentState, context: DeliveryContext): Promise<void> {
    const incidentId = state.incident.id;
    const refs = await (context.cardRefs?.() ?? this.runtime.store.getCardRefs(incidentId));
    const unrecorded = this.unrecorded.get(incidentId);
    if (unrecorded && !refs.slack) {
      await this.runtime.store.setCardRefs(incidentId, { slack: unrecorded });
      refs.slack = unrecorded;
    }
    this.unrecorded.delete(incidentId);
    const channel = refs.slack?.channel ?? this.channel();
    if (!channel) return;
    const pause = slackChannelPause(channel);
    const pausedUntil = await (context.pausedUntil?.(pause) ?? this.runtime.store.channelPausedUntil(pause));
    if (pausedUntil > 0) {
      context.defer(channel, pausedUntil, 'paused');
      return;
    }
    const build = () =>
      buildIncidentView(state, { apiBaseUrl: this.runtime.config.publicUrl, now: this.runtime.clock.now() });
    const message = renderSlackMessage(context.view ? context.view(build) : build());
    const call = refs.slack ? 'chat.update' : 'chat.postMessage';
    const traced = { [ATTR.incidentId]: incidentId, [ATTR.platform]: 'slack' };
    try {
      if (refs.slack) {
        const { channel: updated, ts } = refs.slack;
        await withClientSpan(`slack ${call}`, traced, () =>
          this.cards.update({ token: this.token, channel: updated, ts, ...message }),
        );
        return;
      }
      const posted = await withClientSpan(`slack ${call}`, traced, () =>
        this.cards.postMessage({
          token: this.token,
          channel,
          ...message,
          unfurl_links: false,
          unfurl_media: false,
        }),
      );
      if (!posted.ts) throw new MdrError('upstream_failed', 'chat.postMessage answered without a message ts');
      // Only Slack's field is written: the Teams delivery keeps its own.
      const card = { channel: posted.channel ?? channel, ts: posted.ts };
      await recordPosted(
        () => this.runtime.store.setCardRefs(incidentId, { slack: card }),
        () => this.unrecorded.set(incidentId, card),
      );
      this.runtime.logger.info({ incidentId, channel: posted.channel, ts: posted.ts }, 'slack card posted');
    } catch (error) {
      const failure = classifySlackFailure(error);
      if (failure.kind === 'permanent') {
        this.runtime.logger.error(
          { incidentId, call, slackError: failure.code },
          `slack card not delivered: ${failure.fix}`,
        );
        return;
      }
      if (failure.kind === 'rateLimited') {
        // Every replica holds this channel's deliveries until Slack allows them; other channels go on.
        const until = Date.now() + failure.retryAfterSeconds * 1_000;
        await this.runtime.store.pauseChannel(slackChannelPause(channel), until);
        context.defer(channel, until, 'paused');
        this.runtime.logger.warn(
          { incidentId, call, channel, retryAfterSeconds: failure.retryAfterSeconds },
          'slack rate limited the channel: its cards are delivered after Retry-After',
        );
        return;
      }
      throw error;
    }
  }

  async pauseNames(refs: CardRefs): Promise<string[]> {
    const channel = refs.slack?.channel ?? this.runtime.config.policy.channels.slack;
    return channel ? [slackChannelPause(channel)] : [];
  }

  async remind(task: Task, state: IncidentState): Promise<void> {
    const channel = this.channel();
    if (!channel) return;
    const refs = await this.runtime.store.getCardRefs(task.incidentId);
    const { text } = describeAction(task.type, task.target, state.incident);
    const reply = renderSlackText(
      [
        `Reminder: customer task ${task.id} is still pending: ${text}.`,
        `How: ${task.guidance}`,
        `When it is done, click Mark done on the card or type: /mdr done ${task.id}`,
      ].join('\n'),
    );
    try {
      await this.client.chat.postMessage({
        token: this.token,
        channel: refs.slack?.channel ?? channel,
        ...(refs.slack ? { thread_ts: refs.slack.ts } : {}),
        ...reply,
        unfurl_links: false,
        unfurl_media: false,
      });
    } catch (error) {
      const failure = classifySlackFailure(error);
      if (failure.kind === 'permanent') {
        this.runtime.logger.error(
          { taskId: task.id, slackError: failure.code },
          `slack reminder not posted: ${failure.fix}`,
        );
        return;
      }
      // Rate limited or transient: the reminder job fails and the queue retries it later.
      throw error;
    }
  }

  private channel(): string | undefined {
    const channel = this.runtime.config.policy.channels.slack;
    if (!channel && !this.warnedNoChannel) {
      this.warnedNoChannel = true;
      this.runtime.logger.warn(
        'slack: no channel for incident cards, nothing is posted: set channels.slack (a channel id such as C0123ABCD) in the policy file',
      );
    }
    return channel;
  }
}
