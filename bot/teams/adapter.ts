import {
  type Activity,
  CloudAdapter,
  ConfigurationBotFrameworkAuthentication,
  type ConfigurationBotFrameworkAuthenticationOptions,
  type InvokeResponse,
  type TurnContext,
} from 'botbuilder';
import express, { type RequestHandler } from 'express';
import { sendError } from '../http-errors.js';
import type { Logger } from '../logger.js';
import { isLoopbackAddress } from '../loopback.js';

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

/** The Bot Framework adapter, given the environment unchanged so that every Bot Framework setting works. */
export function createTeamsAdapter(env: TeamsEnv = process.env): TeamsAdapter {
  return new TeamsAdapter(
    new ConfigurationBotFrameworkAuthentication(env as ConfigurationBotFrameworkAuthenticationOptions),
  );
}

const json = express.json({ limit: '1mb', strict: true });

/**
 * `POST /api/messages`: without an app id (Bot Framework then checks no token) only loopback callers are
 * served; otherwise the Bot Framework token is checked before the bot runs. Failures answer 401.
 */
export function teamsRequestHandler(
  adapter: TeamsAdapter,
  logic: (context: TurnContext) => Promise<void>,
  options: { authEnabled: boolean; logger: Logger },
): RequestHandler {
  const { authEnabled, logger } = options;
  return (req, res, next) => {
    if (!authEnabled && !isLoopbackAddress(req.socket.remoteAddress)) {
      logger.warn(
        { remoteAddress: req.socket.remoteAddress },
        'Teams request refused: MicrosoftAppId is not set, so only loopback callers are served',
      );
      sendError(res, 401, 'unauthorized', 'Teams is not configured (MicrosoftAppId): loopback callers only');
      return;
    }
    json(req, res, (parseError?: unknown) => {
      if (parseError) {
        next(parseError);
        return;
      }
      const activity = req.body as Activity | undefined;
      if (!activity || typeof activity !== 'object' || typeof activity.type !== 'string') {
        sendError(res, 400, 'invalid_body', 'the body is not a Bot Framework activity (no "type")', {
          field: 'type',
        });
        return;
      }
      const header = req.headers.authorization ?? '';
      adapter.authenticate(activity, header).then(
        async (authenticated) => {
          try {
            const response = await adapter.run(authenticated, activity, logic);
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
