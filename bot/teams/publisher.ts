import { CardFactory, type ConversationReference, MessageFactory, type TurnContext } from 'botbuilder';
import { type AdaptiveCardJson, renderTeamsCard } from '../../cards/teams/render.js';
import { buildIncidentView } from '../../cards/view-model.js';
import type { CardRefs, IncidentState, Task } from '../../core/model.js';
import type { ActionStore, Clock } from '../../core/ports.js';
import type { Config } from '../config.js';
import type { CardPublisher } from '../delivery.js';
import type { Logger } from '../logger.js';
import type { TeamsAdapter } from './adapter.js';
import {
  ConversationRateLimiter,
  connectorErrorCode,
  type RetryOptions,
  statusOf,
  withTeamsRetry,
} from './throttle.js';
import { deliveryProblem, teamsTrustOf } from './trust.js';

/** What the publisher needs from the runtime. */
export interface TeamsPublisherDeps {
  adapter: TeamsAdapter;
  appId: string;
  store: ActionStore;
  config: Pick<Config, 'policy' | 'publicUrl' | 'teams' | 'localMode'>;
  clock: Clock;
  logger: Logger;
  limiter?: ConversationRateLimiter;
  retry?: RetryOptions;
}

type TeamsRef = NonNullable<CardRefs['teams']>[number];

/** The conversation id without a thread suffix (`19:x@thread.tacv2;messageid=1` -> `19:x@thread.tacv2`). */
export function baseConversationId(id: string): string {
  return id.split(';')[0] ?? id;
}

/** Whether a stored conversation reference is a team channel (as opposed to a personal or group chat). */
export function isChannelReference(reference: Partial<ConversationReference>): boolean {
  return reference.conversation?.conversationType === 'channel';
}

/**
 * Posts each incident's card once to the Teams conversations it goes to (the policy's `channels.teams`,
 * else every team channel the bot was added to) and later updates the same activity in place.
 * The conversations of a first post are recorded before sending (`activityId: ''` = not posted yet), so a
 * retried job posts only where the card is missing and never posts it twice.
 */
export class TeamsPublisher implements CardPublisher {
  readonly platform = 'teams' as const;
  private readonly limiter: ConversationRateLimiter;

  constructor(private readonly deps: TeamsPublisherDeps) {
    this.limiter = deps.limiter ?? new ConversationRateLimiter();
  }

  /** The shared card, as the channel sees it before anyone's own refresh. */
  sharedCard(state: IncidentState): AdaptiveCardJson {
    const view = buildIncidentView(state, {
      apiBaseUrl: this.deps.config.publicUrl,
      now: this.deps.clock.now(),
    });
    return renderTeamsCard(view, { viewer: 'shared' });
  }

  async deliver(state: IncidentState): Promise<void> {
    const { store } = this.deps;
    const incidentId = state.incident.id;
    let plan = (await store.getCardRefs(incidentId)).teams;
    if (!plan || plan.length === 0) {
      const targets = await this.targets();
      if (targets.length === 0) return;
      plan = targets.map((t) => ({ conversationId: t.conversationId, activityId: '' }));
      await this.saveRefs(incidentId, plan);
    }
    const card = this.sharedCard(state);
    const references = new Map((await this.conversations()).map((c) => [c.conversationId, c.reference]));
    for (const ref of [...plan]) {
      const reference = references.get(ref.conversationId) as Partial<ConversationReference> | undefined;
      if (!reference) {
        this.deps.logger.warn(
          { incidentId, conversationId: ref.conversationId },
          'Teams card not updated: the bot is no longer installed in that conversation, or it is no longer allowed',
        );
        plan = plan.filter((r) => r !== ref);
        await this.saveRefs(incidentId, plan);
        continue;
      }
      try {
        if (ref.activityId) {
          await this.send(reference, (ctx) =>
            ctx.updateActivity({
              type: 'message',
              id: ref.activityId,
              attachments: [CardFactory.adaptiveCard(card)],
            }),
          );
        } else {
          const activityId = await this.send(reference, async (ctx) => {
            const sent = await ctx.sendActivity(MessageFactory.attachment(CardFactory.adaptiveCard(card)));
            return sent?.id ?? '';
          });
          plan = plan.map((r) => (r === ref ? { ...r, activityId } : r));
          await this.saveRefs(incidentId, plan);
          this.deps.logger.info(
            { incidentId, conversationId: ref.conversationId, activityId },
            'Teams card posted',
          );
        }
      } catch (error) {
        if (!(await this.dropIfGone(error, ref.conversationId, incidentId))) throw error;
        plan = plan.filter((r) => r.conversationId !== ref.conversationId);
        await this.saveRefs(incidentId, plan);
      }
    }
  }

  async remind(task: Task, state: IncidentState): Promise<void> {
    const refs = (await this.deps.store.getCardRefs(state.incident.id)).teams ?? [];
    const references = new Map((await this.conversations()).map((c) => [c.conversationId, c.reference]));
    const text = `Reminder: customer task ${task.id} (${task.type}) is still pending. ${task.guidance} When it is done, press Mark done on the card or send "done ${task.id}".`;
    for (const ref of refs) {
      const reference = references.get(ref.conversationId) as Partial<ConversationReference> | undefined;
      if (!reference || !ref.activityId) continue;
      const thread = isChannelReference(reference)
        ? {
            ...reference,
            conversation: {
              ...reference.conversation,
              id: `${ref.conversationId};messageid=${ref.activityId}`,
            },
          }
        : reference;
      try {
        await this.send(thread as Partial<ConversationReference>, async (ctx) => {
          await ctx.sendActivity(MessageFactory.text(text));
        });
      } catch (error) {
        if (!(await this.dropIfGone(error, ref.conversationId, state.incident.id))) throw error;
      }
    }
  }

  /** Where a new incident's card goes: the policy's channel if stored, else every stored team channel. */
  private async targets(): Promise<{ conversationId: string; reference: unknown }[]> {
    const all = await this.conversations();
    const wanted = this.deps.config.policy.channels.teams;
    if (wanted) {
      const match = all.filter((c) => c.conversationId === baseConversationId(wanted));
      if (match.length === 0) {
        this.deps.logger.warn(
          { channel: wanted },
          'Teams card not posted: channels.teams of the policy names a conversation the bot has not been added to (add the app to that team, or @mention the bot once in that channel)',
        );
      }
      return match;
    }
    return all.filter((c) => isChannelReference(c.reference as Partial<ConversationReference>));
  }

  /**
   * The stored conversations cards may go to: of the allowed tenant, at an allowed `serviceUrl`. Others
   * (another tenant, a reference saved without its tenant, a serviceUrl no longer allowed) are skipped.
   */
  private async conversations(): Promise<{ conversationId: string; reference: unknown }[]> {
    const trust = teamsTrustOf(this.deps.config);
    const allowed: { conversationId: string; reference: unknown }[] = [];
    for (const c of await this.deps.store.listConversations()) {
      const problem = deliveryProblem(c.reference as Partial<ConversationReference>, trust);
      if (!problem) allowed.push(c);
      else
        this.deps.logger.warn(
          { conversationId: c.conversationId, reason: problem },
          'Teams: no card goes to this stored conversation',
        );
    }
    return allowed;
  }

  /** Run `logic` in the conversation, inside Teams' rate limits and with back-off on throttling. */
  private async send<T>(
    reference: Partial<ConversationReference>,
    logic: (ctx: TurnContext) => Promise<T>,
  ): Promise<T> {
    const conversationId = baseConversationId(reference.conversation?.id ?? '');
    const { activityId: _replyTo, ...target } = reference;
    return withTeamsRetry(
      async () => {
        await this.limiter.take(conversationId);
        let result: T | undefined;
        await this.deps.adapter.continueConversationAsync(this.deps.appId, target, async (ctx) => {
          result = await logic(ctx);
        });
        return result as T;
      },
      {
        ...this.deps.retry,
        onRetry: ({ status, attempt, waitMs }) =>
          this.deps.logger.warn(
            { conversationId, status, attempt, waitMs },
            'Teams throttled the bot: backing off',
          ),
      },
    );
  }

  /** A 403 MessageWritesBlocked means the bot was removed or blocked: forget that conversation. */
  private async dropIfGone(error: unknown, conversationId: string, incidentId: string): Promise<boolean> {
    const status = statusOf(error);
    const code = connectorErrorCode(error);
    if (status === 403 && code === 'MessageWritesBlocked') {
      await this.deps.store.removeConversation(conversationId);
      this.deps.logger.warn(
        { conversationId, incidentId },
        'Teams answered 403 MessageWritesBlocked (the bot was removed or blocked there): conversation reference dropped',
      );
      return true;
    }
    if (status === 404) {
      this.deps.logger.warn(
        { conversationId, incidentId },
        'Teams answered 404 for the card (the message or conversation was deleted): it will not be updated there',
      );
      return true;
    }
    return false;
  }

  private async saveRefs(incidentId: string, teams: TeamsRef[]): Promise<void> {
    // Only Teams' field is written: the Slack delivery runs apart and keeps its own.
    await this.deps.store.setCardRefs(incidentId, { teams });
  }
}
