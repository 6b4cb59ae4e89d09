import {
  type AdaptiveCardInvokeResponse,
  type AdaptiveCardInvokeValue,
  CardFactory,
  type ChannelAccount,
  MessageFactory,
  TeamsActivityHandler,
  TeamsInfo,
  TurnContext,
} from 'botbuilder';
import { ATTR, annotate, withSpan } from '../../adapters/tracing.js';
import { buildIncidentView } from '../../cards/incident-view.js';
import {
  type AdaptiveCardJson,
  reasonInputId,
  renderTeamsCard,
  renderTeamsTaskList,
  teamsInputId,
  viewerOf,
} from '../../cards/teams/render.js';
import { BUTTON_VERBS, USE_CASE_OF } from '../../core/button-verbs.js';
import { type ActionRef, type Actor, type Decision, recordRefusal } from '../../core/decisions.js';
import { listTasks } from '../../core/list-tasks.js';
import { rolesOf } from '../../core/policy.js';
import { type CommandPlace, replyText, runCommand } from '../commands.js';
import type { Runtime } from '../runtime.js';
import { baseConversationId } from './publisher.js';
import { type TeamsTrust, tenantOf } from './trust.js';

const CARD = 'application/vnd.microsoft.card.adaptive';
/** The card's buttons, and `refresh` (Teams asks for the viewer's own card). */
const VERBS = [...BUTTON_VERBS, 'refresh'] as const;
type Verb = (typeof VERBS)[number];

/**
 * The Teams side of the bot: remembers where it is installed, answers Universal Action clicks with the
 * clicker's own card, and runs chat commands. Every decision is the core's.
 */
export class MdrTeamsBot extends TeamsActivityHandler {
  constructor(
    private readonly runtime: Runtime,
    private readonly trust: TeamsTrust,
  ) {
    super();
    this.onInstallationUpdateAdd(async (ctx, next) => {
      await this.remember(ctx);
      await next();
    });
    this.onInstallationUpdateRemove(async (ctx, next) => {
      await this.forget(ctx);
      await next();
    });
    this.onMembersAdded(async (ctx, next) => {
      if (isBotAmong(ctx, ctx.activity.membersAdded)) await this.remember(ctx);
      await next();
    });
    this.onMembersRemoved(async (ctx, next) => {
      if (isBotAmong(ctx, ctx.activity.membersRemoved)) await this.forget(ctx);
      await next();
    });
    this.onMessage(async (ctx, next) => {
      await this.command(ctx);
      await next();
    });
  }

  protected override onAdaptiveCardInvoke(
    ctx: TurnContext,
    value: AdaptiveCardInvokeValue,
  ): Promise<AdaptiveCardInvokeResponse> {
    return withSpan('teams adaptiveCard/action', { [ATTR.platform]: 'teams' }, () =>
      this.cardAction(ctx, value),
    );
  }

  /** A card button (`Action.Execute`): decide as the clicker, answer with the card as they should see it. */
  private async cardAction(
    ctx: TurnContext,
    value: AdaptiveCardInvokeValue,
  ): Promise<AdaptiveCardInvokeResponse> {
    const { deps, store, logger } = this.runtime;
    const verb = value.action?.verb as Verb;
    // Button data names the incident and the action; under Skip, the reason typed comes with it.
    const data = (value.action?.data ?? {}) as Record<string, unknown>;
    if (!VERBS.includes(verb) || typeof data.incidentId !== 'string')
      return invokeError(400, 'BadRequest', 'unknown card action');
    if (verb !== 'refresh' && typeof data.actionId !== 'string')
      return invokeError(400, 'BadRequest', 'the card action names no action');
    const actor = this.actorOf(ctx);
    if ('refused' in actor) {
      logger.warn({ verb, incidentId: data.incidentId, reason: actor.refused }, 'Teams card action refused');
      await recordRefusal(deps, this.unvouched(ctx), verb, `not_allowed: ${actor.refused}`);
      return invokeError(403, 'Forbidden', actor.refused);
    }

    let decision: Decision | undefined;
    if (verb !== 'refresh') {
      const ref: ActionRef = { incidentId: data.incidentId, actionId: data.actionId as string };
      annotate({ [ATTR.incidentId]: ref.incidentId, [ATTR.actionId]: ref.actionId, [ATTR.verb]: verb });
      const named = await this.withName(ctx, actor);
      // Teams sends every input of the card with the click: the reason typed under Skip, the scan chosen.
      const input =
        verb === 'skip'
          ? { reason: typedReason(data, ref.actionId) }
          : verb === 'approve'
            ? { scanType: data[teamsInputId('scanType', ref.actionId)] }
            : {};
      decision = await USE_CASE_OF[verb](deps, ref, named, input);
    }
    if (decision?.ok) annotate({ [ATTR.actionType]: decision.action.type });
    if (decision && !decision.ok && decision.code === 'invalid_choice') {
      return invokeError(400, 'BadRequest', decision.message);
    }
    const notice = decision && !decision.ok ? decision.message : undefined;
    if (verb === 'markDone' && !(await this.isIncidentCard(ctx, data.incidentId))) {
      return cardResponse(
        withNotice(renderTeamsTaskList(await listTasks(deps, 'pending'), this.viewOptions()), notice),
      );
    }
    const state = await store.getIncident(data.incidentId);
    if (!state) return invokeError(404, 'NotFound', 'no such incident');
    const roles = rolesOf(deps.policy.roles, actor.id);
    const viewer = viewerOf(roles);
    const card = renderTeamsCard(buildIncidentView(state, this.viewOptions()), { viewer, notice });
    return cardResponse(card);
  }

  /** Chat commands: the same words as Slack's `/mdr`, sent to the bot (mention stripped). */
  private async command(ctx: TurnContext): Promise<void> {
    const actor = this.actorOf(ctx);
    if ('refused' in actor) {
      await recordRefusal(this.runtime.deps, this.unvouched(ctx), 'command', `not_allowed: ${actor.refused}`);
      await ctx.sendActivity(MessageFactory.text(`Refused: ${actor.refused}`));
      return;
    }
    await this.rememberPolicyChannel(ctx);
    const text = (TurnContext.removeRecipientMention(ctx.activity) ?? ctx.activity.text ?? '')
      .replace(/&nbsp;/g, ' ')
      .trim();
    const place = await this.placeOf(ctx);
    const reply = await runCommand(this.runtime.deps, text, await this.withName(ctx, actor), place);
    if (reply.kind === 'tasks') {
      const card = renderTeamsTaskList(reply.tasks, this.viewOptions());
      await ctx.sendActivity(MessageFactory.attachment(CardFactory.adaptiveCard(card)));
      return;
    }
    // Teams has no message only one person sees: the answer elsewhere is where to ask, and nothing else.
    const where =
      reply.kind === 'refused' && place === 'elsewhere'
        ? ' Send them in a channel of the team the MDR app is installed in, or in a personal chat with the bot.'
        : '';
    const message = MessageFactory.text(`${replyText(reply)}${where}`);
    message.textFormat = 'plain';
    await ctx.sendActivity(message);
  }

  /**
   * The actor with their name, for the cards: the activity's `from.name`, or, when Teams sent none, the
   * member's name from the conversation's roster (`TeamsInfo.getMember`). Without either the card shows
   * the identity; the name is never needed to decide.
   */
  private async withName(ctx: TurnContext, actor: Actor): Promise<Actor> {
    const given = ctx.activity.from?.name?.trim();
    if (given) return { ...actor, name: given };
    const memberId = ctx.activity.from?.id;
    if (!memberId) return actor;
    try {
      const member = await TeamsInfo.getMember(ctx, memberId);
      const name = member.name?.trim();
      // Only a member with the same Entra identity names this actor (the Bot Connector calls it
      // `objectId`, the SDK types `aadObjectId`).
      const objectId = member.aadObjectId ?? (member as { objectId?: string }).objectId;
      if (name && objectId === ctx.activity.from?.aadObjectId) return { ...actor, name };
    } catch (error) {
      this.runtime.logger.warn(
        { err: error, actor: actor.id },
        'Teams: could not read the member name (the card shows the identity instead)',
      );
    }
    return actor;
  }

  /** Who the audit names when the platform could not vouch for the sender (foreign tenant, no Entra id). */
  private unvouched(ctx: TurnContext): Actor {
    const who = ctx.activity.from?.aadObjectId ?? ctx.activity.from?.id ?? 'unknown';
    return {
      id: `teams-unverified:${tenantOf(ctx.activity) ?? 'no-tenant'}:${who}`.slice(0, 300),
      platform: 'teams',
    };
  }

  /** Who clicked or wrote, or why nobody may act from here. */
  private actorOf(ctx: TurnContext): Actor | { refused: string } {
    if (this.trust.tenantId && tenantOf(ctx.activity) !== this.trust.tenantId)
      return { refused: 'this bot serves only its own organisation (MicrosoftAppTenantId)' };
    const aadObjectId = ctx.activity.from?.aadObjectId;
    if (!aadObjectId)
      return { refused: 'your Microsoft Entra identity is unknown: sign in to Teams with a work account' };
    return { id: `teams:${aadObjectId}`, platform: 'teams' };
  }

  /**
   * Store where the bot was added, with its tenant, so incident cards can be posted there later. Only
   * for the allowed tenant (the endpoint already refused others; checked again where it is saved).
   */
  private async remember(ctx: TurnContext): Promise<void> {
    const tenant = tenantOf(ctx.activity);
    if (this.trust.tenantId && tenant !== this.trust.tenantId) {
      this.runtime.logger.warn(
        { tenant },
        'Teams: the bot was added in another tenant than MicrosoftAppTenantId: ignored, no cards go there',
      );
      return;
    }
    const reference = TurnContext.getConversationReference(ctx.activity);
    const conversationId = baseConversationId(ctx.activity.conversation.id);
    await this.runtime.store.saveConversation(conversationId, {
      ...reference,
      conversation: {
        ...reference.conversation,
        id: conversationId,
        ...(tenant ? { tenantId: tenant } : {}),
      },
    });
    this.runtime.logger.info(
      { conversationId, conversationType: ctx.activity.conversation.conversationType },
      'Teams: bot added to a conversation',
    );
  }

  private async forget(ctx: TurnContext): Promise<void> {
    const conversationId = baseConversationId(ctx.activity.conversation.id);
    await this.runtime.store.removeConversation(conversationId);
    this.runtime.logger.info({ conversationId }, 'Teams: bot removed from a conversation');
  }

  /** The policy may name a channel other than General: mentioning the bot there once is enough to learn it. */
  private async rememberPolicyChannel(ctx: TurnContext): Promise<void> {
    const wanted = this.runtime.config.policy.channels.teams;
    if (!wanted || baseConversationId(ctx.activity.conversation.id) !== baseConversationId(wanted)) return;
    const known = await this.runtime.store.listConversations();
    if (!known.some((c) => c.conversationId === baseConversationId(wanted))) await this.remember(ctx);
  }

  /**
   * Where a command was sent. The SOC's conversations are those of the allowed tenant (checked before
   * this runs) where the bot is installed: a stored conversation, or any channel of a team whose install
   * is stored. A personal chat with the bot there is a direct message. Anywhere else the bot does not
   * answer commands.
   */
  private async placeOf(ctx: TurnContext): Promise<CommandPlace> {
    const { activity } = ctx;
    const conversationId = baseConversationId(activity.conversation.id);
    const team = (activity.channelData as { team?: { id?: unknown } } | undefined)?.team?.id;
    const known = new Set((await this.runtime.store.listConversations()).map((c) => c.conversationId));
    const installed =
      known.has(conversationId) ||
      (activity.conversation.conversationType === 'channel' &&
        typeof team === 'string' &&
        known.has(baseConversationId(team)));
    if (!installed) return 'elsewhere';
    return activity.conversation.conversationType === 'personal' ? 'direct' : 'socChannel';
  }

  /** True when the invoke came from an incident card this bot posted (not from a `pending` task list). */
  private async isIncidentCard(ctx: TurnContext, incidentId: string): Promise<boolean> {
    const replyTo = ctx.activity.replyToId;
    if (!replyTo) return true;
    const refs = (await this.runtime.store.getCardRefs(incidentId)).teams ?? [];
    return refs.some((r) => r.activityId === replyTo);
  }

  private viewOptions() {
    return { apiBaseUrl: this.runtime.config.publicUrl, now: this.runtime.clock.now() };
  }
}

function isBotAmong(ctx: TurnContext, members: ChannelAccount[] | undefined): boolean {
  return (members ?? []).some((m) => m.id === ctx.activity.recipient?.id);
}

/** The reason typed under an action's Skip button, or '' (refused by the core: a reason is required). */
function typedReason(data: Record<string, unknown>, actionId: string): string {
  const typed = data[reasonInputId(actionId)];
  return typeof typed === 'string' ? typed : '';
}

function cardResponse(card: AdaptiveCardJson): AdaptiveCardInvokeResponse {
  return { statusCode: 200, type: CARD, value: card };
}

function invokeError(statusCode: number, code: string, message: string): AdaptiveCardInvokeResponse {
  return { statusCode, type: 'application/vnd.microsoft.error', value: { code, message } };
}

/** Put a notice (a refusal) at the top of a card that has no notice slot of its own. */
function withNotice(card: AdaptiveCardJson, notice: string | undefined): AdaptiveCardJson {
  if (!notice) return card;
  const body = Array.isArray(card.body) ? card.body : [];
  const banner = {
    type: 'Container',
    style: 'warning',
    bleed: true,
    items: [
      { type: 'TextBlock', text: notice.replace(/[\\`*_~[\]<]/g, '\\$&'), wrap: true, weight: 'Bolder' },
    ],
  };
  return { ...card, body: [banner, ...body] };
}
