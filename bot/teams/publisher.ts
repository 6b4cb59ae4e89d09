import { HttpRequestError } from '../../adapters/http-client.js';
import { ATTR, withClientSpan } from '../../adapters/tracing.js';
import { buildIncidentView } from '../../cards/incident-view.js';
import { type AdaptiveCardJson, renderTeamsCard } from '../../cards/teams/render.js';
import type { CardRefs, IncidentState, Task } from '../../core/model.js';
import type { ActionStore, Clock } from '../../core/ports.js';
import type { Config } from '../config.js';
import {
  type CardPublisher,
  type DeliveryContext,
  PLATFORM_CALL_TIMEOUT_MS,
  recordPosted,
  retryDelayMs,
} from '../delivery.js';
import type { Logger } from '../logger.js';
import {
  BotConnector,
  ConnectorError,
  type ConnectorToken,
  type ConversationReference,
} from './connector-api.js';
import { deliveryProblem, teamsTrustOf } from './trust.js';

/** What the publisher needs from the runtime. */
export interface TeamsPublisherDeps {
  /** The bot's token for the Bot Connector (`connectorToken(env)`); none in local mode without an app id. */
  token?: ConnectorToken | undefined;
  store: ActionStore;
  config: Pick<Config, 'policy' | 'publicUrl' | 'teams' | 'localMode'>;
  clock: Clock;
  logger: Logger;
  /** Bound of each Bot Connector call (default PLATFORM_CALL_TIMEOUT_MS). */
  callTimeoutMs?: number;
}

type TeamsRef = NonNullable<CardRefs['teams']>[number];

/** The pause name of a Teams conversation (shared by every replica through the store). */
export const teamsConversationPause = (conversationId: string) => `teams:${conversationId}`;

/** Statuses Teams asks a bot to try again later besides 429: precondition failed and server errors. */
const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([412, 500, 502, 503, 504]);

/** The HTTP status of a Bot Connector call that was answered with a failure. */
export function statusOf(error: unknown): number | undefined {
  return error instanceof ConnectorError ? error.statusCode : undefined;
}

/** The error code in a Bot Connector error body (`{"error": {"code": "MessageWritesBlocked"}}`). */
export function connectorErrorCode(error: unknown): string | undefined {
  return error instanceof ConnectorError ? error.code : undefined;
}

/** Retry-After of a failed Bot Connector call in ms, at most an hour, when it has one. */
export function retryAfterMs(error: unknown): number | undefined {
  const wait = error instanceof ConnectorError ? error.retryAfterMs : undefined;
  return wait === undefined ? undefined : Math.min(wait, 3_600_000);
}

/** A call that got no answer in time (given up at the per-call bound) or no answer at all. */
export function isTimeout(error: unknown): boolean {
  return error instanceof HttpRequestError;
}

/** The conversation id without a thread suffix (`19:x@thread.tacv2;messageid=1` -> `19:x@thread.tacv2`). */
export function baseConversationId(id: string): string {
  return id.split(';')[0] ?? id;
}

/** Whether a stored conversation reference is a team channel (as opposed to a personal or group chat). */
export function isChannelReference(reference: ConversationReference): boolean {
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
  private readonly connector: BotConnector;
  /**
   * Cards Teams posted whose activity id could not be stored (Redis away at that moment), by incident
   * and conversation: the next delivery of the incident in this process stores them and updates those
   * activities instead of posting again.
   */
  private readonly unrecorded = new Map<string, string>();

  constructor(private readonly deps: TeamsPublisherDeps) {
    this.connector = new BotConnector({
      token: deps.token,
      timeoutMs: deps.callTimeoutMs ?? PLATFORM_CALL_TIMEOUT_MS,
    });
  }

  /**
   * The shared card, as the channel sees it before anyone's own refresh; with `context`, from the view
   * model the delivery builds once for every platform.
   */
  sharedCard(state: IncidentState, context?: Pick<DeliveryContext, 'view'>): AdaptiveCardJson {
    const build = () =>
      buildIncidentView(state, { apiBaseUrl: this.deps.config.publicUrl, now: this.deps.clock.now() });
    return renderTeamsCard(context?.view ? context.view(build) : build(), { viewer: 'shared' });
  }

  async deliver(state: IncidentState, context: DeliveryContext): Promise<void> {
    const { store } = this.deps;
    const incidentId = state.incident.id;
    let plan = (await (context.cardRefs?.() ?? store.getCardRefs(incidentId))).teams;
    // Read once per delivery: where a new card goes, and the references of every card.
    const conversations = await this.conversations();
    if (!plan || plan.length === 0) {
      const targets = this.targets(conversations);
      if (targets.length === 0) return;
      plan = targets.map((t) => ({ conversationId: t.conversationId, activityId: '' }));
      await this.saveRefs(incidentId, plan);
    }
    const posted = (r: TeamsRef) => this.unrecorded.get(`${incidentId}|${r.conversationId}`);
    if (plan.some((r) => !r.activityId && posted(r))) {
      plan = plan.map((r) => (!r.activityId && posted(r) ? { ...r, activityId: posted(r) ?? '' } : r));
      await this.saveRefs(incidentId, plan);
    }
    for (const r of plan) this.unrecorded.delete(`${incidentId}|${r.conversationId}`);
    const card = this.sharedCard(state, context);
    const traced = { [ATTR.incidentId]: incidentId, [ATTR.platform]: 'teams' };
    const references = new Map(conversations.map((c) => [c.conversationId, c.reference]));
    for (const ref of [...plan]) {
      if (context.targets && !context.targets.includes(ref.conversationId)) continue;
      const reference = references.get(ref.conversationId) as ConversationReference | undefined;
      if (!reference) {
        this.deps.logger.warn(
          { incidentId, conversationId: ref.conversationId },
          'Teams card not updated: the bot is no longer installed in that conversation, or it is no longer allowed',
        );
        plan = plan.filter((r) => r !== ref);
        await this.saveRefs(incidentId, plan);
        continue;
      }
      if (Date.now() > context.deadline) {
        context.defer(ref.conversationId, Date.now(), 'budget');
        continue;
      }
      const pause = teamsConversationPause(ref.conversationId);
      const pausedUntil = await (context.pausedUntil?.(pause) ?? store.channelPausedUntil(pause));
      if (pausedUntil > 0) {
        context.defer(ref.conversationId, pausedUntil, 'paused');
        continue;
      }
      try {
        if (ref.activityId) {
          const id = ref.activityId;
          await withClientSpan('teams updateActivity', traced, () =>
            this.connector.update(reference, id, card),
          );
        } else {
          const activityId = await withClientSpan('teams sendActivity', traced, () =>
            this.connector.post(reference, { card }),
          );
          plan = plan.map((r) => (r === ref ? { ...r, activityId } : r));
          const recorded = plan;
          await recordPosted(
            () => this.saveRefs(incidentId, recorded),
            () => this.unrecorded.set(`${incidentId}|${ref.conversationId}`, activityId),
          );
          this.deps.logger.info(
            { incidentId, conversationId: ref.conversationId, activityId },
            'Teams card posted',
          );
        }
      } catch (error) {
        if (await this.deferIfRetryable(error, ref.conversationId, incidentId, context)) continue;
        if (!(await this.dropIfGone(error, ref.conversationId, incidentId))) throw error;
        plan = plan.filter((r) => r.conversationId !== ref.conversationId);
        await this.saveRefs(incidentId, plan);
      }
    }
  }

  async pauseNames(refs: CardRefs): Promise<string[]> {
    // A card not posted yet goes where a new card goes.
    const ids = refs.teams?.length
      ? refs.teams.map((r) => r.conversationId)
      : this.targets(await this.conversations({ quiet: true }), { quiet: true }).map((c) => c.conversationId);
    return ids.map(teamsConversationPause);
  }

  async remind(task: Task, state: IncidentState): Promise<void> {
    const refs = (await this.deps.store.getCardRefs(state.incident.id)).teams ?? [];
    const references = new Map((await this.conversations()).map((c) => [c.conversationId, c.reference]));
    const text = `Reminder: customer task ${task.id} (${task.type}) is still pending. ${task.guidance} When it is done, press Mark done on the card or send "done ${task.id}".`;
    for (const ref of refs) {
      const reference = references.get(ref.conversationId) as ConversationReference | undefined;
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
        await this.connector.post(thread, { text });
      } catch (error) {
        if (!(await this.dropIfGone(error, ref.conversationId, state.incident.id))) throw error;
      }
    }
  }

  /**
   * Where a new incident's card goes: the policy's channel if stored, else every stored team channel.
   * `quiet`: a look ahead, which logs nothing (the delivery itself logs what is wrong).
   */
  private targets(
    all: { conversationId: string; reference: unknown }[],
    { quiet = false } = {},
  ): { conversationId: string; reference: unknown }[] {
    const wanted = this.deps.config.policy.channels.teams;
    if (wanted) {
      const match = all.filter((c) => c.conversationId === baseConversationId(wanted));
      if (match.length === 0 && !quiet) {
        this.deps.logger.warn(
          { channel: wanted },
          'Teams card not posted: channels.teams of the policy names a conversation the bot has not been added to (add the app to that team, or @mention the bot once in that channel)',
        );
      }
      return match;
    }
    return all.filter((c) => isChannelReference(c.reference as ConversationReference));
  }

  /**
   * The stored conversations cards may go to: of the allowed tenant, at an allowed `serviceUrl`. Others
   * (another tenant, a reference saved without its tenant, a serviceUrl no longer allowed) are skipped.
   */
  private async conversations({
    quiet = false,
  } = {}): Promise<{ conversationId: string; reference: unknown }[]> {
    const trust = teamsTrustOf(this.deps.config);
    const allowed: { conversationId: string; reference: unknown }[] = [];
    for (const c of await this.deps.store.listConversations()) {
      const problem = deliveryProblem(c.reference as ConversationReference, trust);
      if (!problem) allowed.push(c);
      else if (!quiet)
        this.deps.logger.warn(
          { conversationId: c.conversationId, reason: problem },
          'Teams: no card goes to this stored conversation',
        );
    }
    return allowed;
  }

  /**
   * 429: the conversation is paused for Retry-After on every replica and the card deferred to then;
   * 412, 5xx or no answer in time: deferred with back-off (never before Retry-After).
   */
  private async deferIfRetryable(
    error: unknown,
    conversationId: string,
    incidentId: string,
    context: DeliveryContext,
  ): Promise<boolean> {
    const status = statusOf(error);
    const retryAfter = retryAfterMs(error);
    if (status === 429) {
      const until = Date.now() + (retryAfter ?? retryDelayMs(context.retry));
      await this.deps.store.pauseChannel(teamsConversationPause(conversationId), until);
      context.defer(conversationId, until, 'paused');
      this.deps.logger.warn(
        { incidentId, conversationId, waitMs: until - Date.now() },
        'Teams throttled the conversation: its cards are delivered after Retry-After',
      );
      return true;
    }
    if ((status !== undefined && RETRYABLE_STATUSES.has(status)) || isTimeout(error)) {
      const at = Date.now() + retryDelayMs(context.retry, retryAfter ?? 0);
      context.defer(conversationId, at, 'failed');
      this.deps.logger.warn(
        { incidentId, conversationId, status: status ?? 'timeout', retry: context.retry + 1 },
        'Teams did not take the card: delivering it there again later',
      );
      return true;
    }
    return false;
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
