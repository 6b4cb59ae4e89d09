import type {
  AllMiddlewareArgs,
  AnyMiddlewareArgs,
  RespondArguments,
  ViewUpdateResponseAction,
  webApi,
} from '@slack/bolt';
import { backoffMs } from '../../adapters/backoff.js';
import { renderSlackText } from '../../cards/slack/render.js';
import { renderSlackNoticeModal } from '../../cards/slack/skip-modal.js';
import { type Actor, recordRefusal } from '../../core/decisions.js';
import { MdrError } from '../../core/errors.js';
import type { Logger } from '../logger.js';
import type { Runtime } from '../runtime.js';
import { type Backoff, DEFAULT_BACKOFF } from './backoff.js';
import { classifySlackFailure } from './errors.js';

/**
 * How long a request waits for an `auth.test` still in flight before it is refused as "not ready";
 * short, so a slash command still gets its own budget inside Slack's 3 seconds.
 */
const READY_WAIT_MS = 800;

/**
 * The one Slack workspace this bot serves: the team of SLACK_BOT_TOKEN, read once with `auth.test`.
 * A failure never stops the process: the call is retried in the background, and until it succeeds
 * the team is unknown, so every Slack request is refused (fail closed).
 */
export class SlackWorkspace {
  private team: string | undefined;
  private attempt: Promise<string | undefined> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;

  constructor(
    private readonly client: webApi.WebClient,
    private readonly botToken: string,
    private readonly logger: Logger,
    /** Of `auth.test` after a failure. */
    private readonly retry: Backoff = DEFAULT_BACKOFF,
  ) {}

  /** Call `auth.test` now (and again after each failure, until `stop`). */
  start(): void {
    this.attempt ??= this.resolve();
  }

  /** Stop retrying. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** The team id of the token, or undefined while unknown. */
  get teamId(): string | undefined {
    return this.team;
  }

  /** The team id, waiting up to `waitMs` for an `auth.test` in flight; undefined while unknown. */
  async current(waitMs = READY_WAIT_MS): Promise<string | undefined> {
    if (this.team || !this.attempt) return this.team;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), waitMs);
    });
    try {
      return await Promise.race([this.attempt, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async resolve(): Promise<string | undefined> {
    try {
      const answer = await this.client.auth.test({ token: this.botToken });
      if (typeof answer.team_id !== 'string' || answer.team_id === '')
        throw new MdrError('upstream_failed', 'auth.test answered without a team_id');
      this.team = answer.team_id;
      this.failures = 0;
      this.logger.info(
        { component: 'slack', team: answer.team_id, botUserId: answer.user_id },
        `slack: serving workspace ${answer.team_id} only`,
      );
      return this.team;
    } catch (error) {
      this.failures += 1;
      const delayMs = backoffMs(this.retry.firstMs, this.failures - 1, this.retry.maxMs);
      const failure = classifySlackFailure(error);
      const fix =
        failure.kind === 'permanent'
          ? failure.fix
          : 'check SLACK_BOT_TOKEN, and that SLACK_API_URL reaches Slack';
      this.logger.error(
        { component: 'slack', err: (error as Error).message, retryInMs: delayMs },
        `slack: auth.test failed, so the workspace of the bot token is unknown and every Slack command and click is refused until it succeeds: ${fix}`,
      );
      if (!this.stopped) {
        this.timer = setTimeout(() => {
          this.attempt = this.resolve();
        }, delayMs);
        this.timer.unref();
      }
      return undefined;
    }
  }
}

/**
 * Every workspace a Slack request names: the command's `team_id`, the click's `team.id` and
 * `user.team_id`, and a submitted modal's `view.team_id`.
 */
export function teamIdsOf(body: unknown): string[] {
  const b = (body ?? {}) as {
    team_id?: unknown;
    team?: { id?: unknown } | null;
    user?: { team_id?: unknown } | null;
    view?: { team_id?: unknown } | null;
  };
  return [b.team_id, b.team?.id, b.user?.team_id, b.view?.team_id].filter(
    (id): id is string => typeof id === 'string' && id !== '',
  );
}

/** Who sent the request, as far as the payload says; never trusted as an identity of this workspace. */
function senderOf(body: unknown): string {
  const b = (body ?? {}) as { user_id?: unknown; user?: { id?: unknown } | null; event?: { user?: unknown } };
  const id = b.user_id ?? b.user?.id ?? b.event?.user;
  return typeof id === 'string' ? id : 'unknown';
}

/** The audit event a refused request would have been: the command, the button's verb, or the event. */
function eventOf(args: AnyMiddlewareArgs): string {
  if ('command' in args) return 'command';
  if ('action' in args && args.action && 'action_id' in args.action) {
    const id = String(args.action.action_id);
    return id.includes(':') ? id.slice(0, id.indexOf(':')) : 'click';
  }
  if ('event' in args) return 'event';
  if ('view' in args && args.view && 'callback_id' in args.view) return 'skip';
  return String((args.body as { type?: unknown }).type ?? 'request').slice(0, 50);
}

/**
 * Bolt middleware run before every listener: a request from another workspace than the token's, or
 * while that workspace is not known yet, is refused, audited and answered to the sender alone; it
 * never reaches a listener, so never the core.
 */
export function workspaceGuard(
  workspace: SlackWorkspace,
  runtime: Runtime,
): (args: AnyMiddlewareArgs & AllMiddlewareArgs) => Promise<void> {
  return async (args) => {
    const { body, next } = args;
    const named = teamIdsOf(body);
    const ours = await workspace.current();
    if (ours && named.length > 0 && named.every((team) => team === ours)) {
      await next();
      return;
    }
    const foreign = named.find((team) => team !== ours);
    const [code, detail, text] = !ours
      ? [
          'not_ready',
          'the Slack workspace of SLACK_BOT_TOKEN is not known yet (auth.test has not succeeded)',
          'The bot is not ready yet (it cannot confirm its Slack workspace): nothing was done. Try again in a minute; if it persists, tell the bot operator to check SLACK_BOT_TOKEN.',
        ]
      : [
          'wrong_workspace',
          `a request from Slack workspace ${foreign ?? '(none named)'}; this bot serves ${ours} only`,
          'This bot answers only in the Slack workspace it was installed for: nothing was done.',
        ];
    const sender = senderOf(body);
    const actor: Actor = {
      id: `slack-unverified:${foreign ?? named[0] ?? 'no-team'}:${sender}`.slice(0, 300),
      platform: 'slack',
    };
    const event = eventOf(args);
    runtime.logger.warn(
      { code, team: foreign, ours, user: sender, event },
      `slack: request refused (${code})`,
    );
    try {
      await recordRefusal(runtime.deps, actor, event, `${code}: ${detail}`);
    } catch (error) {
      runtime.logger.error({ err: error, code }, 'slack: could not audit a refused request');
    }
    await answer(args, text);
  };
}

/**
 * Tell the sender alone: a command in its acknowledgement, a click on its response URL, a modal
 * submission in the modal itself; events need none.
 */
async function answer(args: AnyMiddlewareArgs & AllMiddlewareArgs, text: string): Promise<void> {
  const { ack, respond } = args as {
    ack?: (response?: RespondArguments | ViewUpdateResponseAction) => Promise<void>;
    respond?: (message: RespondArguments) => Promise<unknown>;
  };
  if ('command' in args) {
    await ack?.({ response_type: 'ephemeral', ...renderSlackText(text) });
    return;
  }
  if ('view' in args && (args.body as { type?: unknown }).type === 'view_submission') {
    await ack?.({ response_action: 'update', view: renderSlackNoticeModal(text) });
    return;
  }
  await ack?.();
  if ('action' in args && respond)
    await respond({ response_type: 'ephemeral', replace_original: false, ...renderSlackText(text) });
}
