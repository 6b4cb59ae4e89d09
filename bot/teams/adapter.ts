import { ConfidentialClientApplication } from '@azure/msal-node';
import {
  type Activity,
  ActivityTypes,
  CloudAdapter,
  ConfigurationBotFrameworkAuthentication,
  type ConfigurationBotFrameworkAuthenticationOptions,
  type InvokeResponse,
  MessageFactory,
  type TurnContext,
} from 'botbuilder';
import {
  MsalAppCredentials,
  PasswordServiceClientCredentialFactory,
  type ServiceClientCredentials,
} from 'botframework-connector';
import express, { type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { MdrError } from '../../core/errors.js';
import { failureLog, failureText } from '../failures.js';
import { sendError } from '../http-errors.js';
import { localOnlyProblem } from '../local-only.js';
import type { Logger } from '../logger.js';
import { activityProblem, type TeamsTrust, tenantOf } from './trust.js';

type AuthenticateRequestResult = Awaited<
  ReturnType<ConfigurationBotFrameworkAuthentication['authenticateRequest']>
>;

/** The environment Bot Framework reads (`MicrosoftApp*`, `ToBotFromChannelOpenIdMetadataUrl`, ...). */
export type TeamsEnv = Record<string, string | undefined>;

/**
 * A CloudAdapter that authenticates a request before any bot logic runs, so that every failure to
 * authenticate (missing token, bad token, signing keys that cannot be fetched) is a 401 and runs nothing.
 */
export class TeamsAdapter extends CloudAdapter {
  constructor(private readonly auth: ConfigurationBotFrameworkAuthentication) {
    super(auth);
  }

  /** Validate the `Authorization` header of an inbound activity; throws when it is not valid. */
  authenticate(activity: Activity, authHeader: string): Promise<AuthenticateRequestResult> {
    return this.auth.authenticateRequest(activity, authHeader);
  }

  /** Run the bot for an activity that `authenticate` accepted; returns the invoke response, if any. */
  run(
    authenticated: AuthenticateRequestResult,
    activity: Activity,
    logic: (context: TurnContext) => Promise<void>,
  ): Promise<InvokeResponse | undefined> {
    return this.processActivity(authenticated, activity, logic);
  }
}

/**
 * The Teams error funnel, as Slack's: when handling an activity fails, the person is told what happened
 * and what to do (a card click gets it as the click's error, a message as a reply), and the log says
 * what failed without the request a platform error carries (its headers hold tokens).
 */
export function turnErrorHandler(logger: Logger): (ctx: TurnContext, error: Error) => Promise<void> {
  return async (ctx, error) => {
    const { activity } = ctx;
    // Only a person's click or message is answered here. Anything else (a card delivered proactively,
    // an install event) fails to its caller as before: the delivery job retries it or drops the conversation.
    if (activity.type !== ActivityTypes.Invoke && activity.type !== ActivityTypes.Message) throw error;
    logger.error(
      { err: failureLog(error), activityType: activity.type, name: activity.name },
      'Teams: handling the activity failed; the sender was told to try again',
    );
    const message = failureText(error);
    try {
      if (activity.type === ActivityTypes.Invoke) {
        // Shaped as the bot's own answers to a click (an Adaptive Card error, its status the HTTP one).
        const statusCode = error instanceof MdrError && error.code === 'store_unavailable' ? 503 : 500;
        await ctx.sendActivity({
          type: ActivityTypes.InvokeResponse,
          value: {
            status: statusCode,
            body: {
              statusCode,
              type: 'application/vnd.microsoft.error',
              value: { code: error instanceof MdrError ? error.code : 'internal', message },
            },
          },
        });
      } else {
        const reply = MessageFactory.text(message);
        reply.textFormat = 'plain';
        await ctx.sendActivity(reply);
      }
    } catch (replyError) {
      logger.warn({ err: failureLog(replyError) }, 'Teams: could not tell the sender that handling failed');
    }
  };
}

/**
 * Bot Framework's own credentials check the login authority against login.microsoftonline.com before
 * asking it for a token, whatever `ValidateAuthority` says. With `ValidateAuthority=false` the login URL
 * the operator configured (`ToChannelFromBotLoginUrl`: a private or sovereign cloud, or a test
 * authority) is trusted as given, and no other host is asked.
 */
class ConfiguredAuthorityCredentialFactory extends PasswordServiceClientCredentialFactory {
  override async createCredentials(
    appId: string,
    audience: string,
    loginEndpoint: string,
    validateAuthority: boolean,
  ): Promise<ServiceClientCredentials> {
    if (validateAuthority || !loginEndpoint || appId !== this.appId || !this.password)
      return super.createCredentials(appId, audience, loginEndpoint, validateAuthority);
    const client = new ConfidentialClientApplication({
      auth: {
        clientId: appId,
        clientSecret: this.password,
        authority: loginEndpoint,
        knownAuthorities: [new URL(loginEndpoint).host],
      },
    });
    // The connector names its own copy of @azure/msal-node's class; the client's contract is the same.
    return new MsalAppCredentials(client as never, appId, loginEndpoint, audience);
  }
}

/** The Bot Framework adapter, given the environment unchanged so that every Bot Framework setting works. */
export function createTeamsAdapter(env: TeamsEnv = process.env): TeamsAdapter {
  const options = env as ConfigurationBotFrameworkAuthenticationOptions;
  const trustLoginUrl = String(env.ValidateAuthority ?? '').toLowerCase() === 'false';
  return new TeamsAdapter(
    new ConfigurationBotFrameworkAuthentication(
      options,
      trustLoginUrl
        ? new ConfiguredAuthorityCredentialFactory(
            env.MicrosoftAppId ?? '',
            env.MicrosoftAppPassword ?? '',
            env.MicrosoftAppTenantId ?? '',
          )
        : undefined,
    ),
  );
}

const json = express.json({ limit: '1mb', strict: true });

/** Ids end up in Bot Connector request paths: printable characters, no path or query separators. */
const pathSafe = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point.
    .regex(/^[^\u0000-\u001f\u007f/\\?#]+$/, 'contains control characters or path separators');
const account = z.looseObject({
  id: pathSafe(1_000),
  name: z.string().max(1_000).nullish(),
  aadObjectId: z.string().max(100).nullish(),
});
const text = z.string().max(100_000);
const universalAction = z.looseObject({
  action: z.looseObject({ type: z.string().max(100), verb: z.string().max(100).nullish() }),
});

/**
 * The fields every activity Teams (or the Emulator) sends has, and the types of those the bot reads:
 * anything else is answered 400 before it reaches Bot Framework, which would fail on it with a 500.
 */
const activitySchema = z
  .looseObject({
    type: z.string({ error: 'is required: the body is not a Bot Framework activity' }).min(1).max(100),
    id: z.string().max(1_000).optional(),
    channelId: z.string().min(1).max(100),
    serviceUrl: z.url().max(2_000),
    from: account,
    recipient: account,
    conversation: z.looseObject({
      id: pathSafe(1_000),
      tenantId: z.string().max(100).nullish(),
      conversationType: z.string().max(100).nullish(),
    }),
    channelData: z
      .looseObject({
        tenant: z.looseObject({ id: z.string().max(100) }).nullish(),
        team: z.looseObject({ id: z.string().max(1_000) }).nullish(),
      })
      .nullish(),
    text: text.nullish(),
    name: z.string().max(1_000).nullish(),
    action: z.string().max(100).nullish(),
    replyToId: z.string().max(1_000).nullish(),
    membersAdded: z.array(account).max(1_000).nullish(),
    membersRemoved: z.array(account).max(1_000).nullish(),
    entities: z
      .array(z.looseObject({ type: z.string().max(100) }))
      .max(100)
      .nullish(),
    attachments: z
      .array(z.looseObject({ contentType: z.string().max(200) }))
      .max(100)
      .nullish(),
    value: z.unknown().optional(),
  })
  .superRefine((activity, ctx) => {
    // A Universal Action click names its action; Bot Framework fails with a 500 on any other value.
    if (activity.type !== 'invoke' || activity.name !== 'adaptiveCard/action') return;
    if (!universalAction.safeParse(activity.value).success)
      ctx.addIssue({ code: 'custom', path: ['value', 'action'], message: 'is not an Adaptive Card action' });
  });

/** What `/api/messages` is held to, and where its refusals go. */
export interface TeamsEndpointOptions {
  trust: TeamsTrust;
  logger: Logger;
  /** Audit a refusal (the request claimed an identity or came from this machine). */
  audit: (who: string, detail: string) => Promise<void>;
}

/** How to turn Teams on, for the log and the 401 outside local mode. */
export const TEAMS_OFF =
  'Teams is off: set MicrosoftAppId, MicrosoftAppPassword and MicrosoftAppTenantId (the bot registration) to turn it on';

/**
 * `POST /api/messages`. With an app id the Bot Framework token is checked before anything runs (401 when
 * it fails), then the activity must come from the allowed tenant, over msteams, with a Bot Framework
 * `serviceUrl` (403 and audited otherwise). Without an app id Teams is off (401 to everyone) except in
 * local mode, where only requests from this machine, not through a proxy, are served.
 */
export function teamsRequestHandler(
  adapter: TeamsAdapter,
  logic: (context: TurnContext) => Promise<void>,
  options: TeamsEndpointOptions,
): RequestHandler {
  const { trust, logger, audit } = options;
  const refuse = async (res: Response, who: string, detail: string) => {
    logger.warn({ who, reason: detail }, 'Teams request refused');
    await audit(who, detail);
    sendError(res, 403, 'forbidden', `Teams request refused: ${detail}`);
  };
  return (req, res, next) => {
    if (!trust.authEnabled && !trust.localMode) {
      logger.warn({ remoteAddress: req.socket.remoteAddress }, `Teams request refused: ${TEAMS_OFF}`);
      sendError(res, 401, 'unauthorized', TEAMS_OFF);
      return;
    }
    if (!trust.authEnabled) {
      const problem = localOnlyProblem(req);
      if (problem) {
        logger.warn(
          { remoteAddress: req.socket.remoteAddress, reason: problem },
          'Teams request refused: without MicrosoftAppId only this machine is served, not through a proxy or tunnel',
        );
        audit(`local:${req.socket.remoteAddress ?? 'unknown'}`, `local mode: ${problem}`).then(
          () =>
            sendError(
              res,
              401,
              'unauthorized',
              `Teams without MicrosoftAppId serves this machine only: ${problem}`,
            ),
          next,
        );
        return;
      }
    }
    json(req, res, (parseError?: unknown) => {
      if (parseError) {
        next(parseError);
        return;
      }
      const parsed = activitySchema.safeParse(req.body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const field = issue?.path.join('.') || 'type';
        sendError(res, 400, 'invalid_body', `${field}: ${issue?.message ?? 'is not valid'}`, { field });
        return;
      }
      const activity = req.body as Activity;
      const header = req.headers.authorization ?? '';
      adapter.authenticate(activity, header).then(
        async (authenticated) => {
          try {
            const problem = activityProblem(activity, trust);
            if (problem) {
              await refuse(res, whoSent(activity), problem);
              return;
            }
            const response = await adapter.run(authenticated, activity, logic);
            if (response?.status === 501) {
              // Bot Framework's answer to an invoke no handler knows: a request this bot does not take.
              sendError(
                res,
                400,
                'unsupported_invoke',
                `the bot does not handle invoke ${JSON.stringify(String(activity.name ?? '').slice(0, 100))}`,
              );
              return;
            }
            res.status(response?.status ?? 200);
            if (response?.body !== undefined) res.json(response.body);
            else res.end();
          } catch (error) {
            next(error);
          }
        },
        (error: unknown) => {
          logger.warn(
            { err: (error as Error).message, channelId: activity.channelId },
            'Teams request refused: the Bot Framework token is missing or not valid (check MicrosoftAppId and the bot registration)',
          );
          sendError(res, 401, 'unauthorized', 'missing or invalid Bot Framework token');
        },
      );
    });
  };
}

/** Who an activity says sent it, for the audit of a refusal (not vouched for: named as such). */
function whoSent(activity: Activity): string {
  const from = activity.from as { aadObjectId?: string; id?: string } | undefined;
  return `${tenantOf(activity) ?? 'no-tenant'}:${from?.aadObjectId ?? from?.id ?? 'unknown'}`;
}
