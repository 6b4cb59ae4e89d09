import { isValidSlackRequest } from '@slack/bolt';
import express, { type RequestHandler } from 'express';
import { z } from 'zod';
import { sendError } from '../http-errors.js';
import type { Logger } from '../logger.js';

/** Slack's ids (team T…, enterprise E…, user U…/W…, channel C…/D…/G…): upper-case letters and digits. */
const id = z.string().regex(/^[A-Z0-9]{2,40}$/, 'is not a Slack id');
const loose = z.looseObject;

/** What the bot reads of a button click; Bolt itself needs `actions` to be a list of actions. */
const blockActions = loose({
  type: z.literal('block_actions'),
  user: loose({ id, team_id: id.optional() }),
  team: loose({ id }).nullable(),
  actions: z
    .array(loose({ action_id: z.string().min(1).max(255), type: z.string() }))
    .min(1)
    .max(25),
  container: loose({ type: z.string() }).optional(),
  channel: loose({ id }).optional(),
  message: loose({ ts: z.string() }).optional(),
  enterprise: loose({ id }).nullable().optional(),
  response_url: z.url().optional(),
  trigger_id: z.string().max(255).optional(),
});

/** What the bot reads of a modal submission (the Skip reason): who, which workspace, and the view. */
const viewSubmission = loose({
  type: z.literal('view_submission'),
  user: loose({ id, team_id: id.optional() }),
  team: loose({ id }).nullable(),
  enterprise: loose({ id }).nullable().optional(),
  view: loose({
    id: z.string().min(1).max(64),
    team_id: id.optional(),
    callback_id: z.string().max(255),
    private_metadata: z.string().max(3_000),
    state: loose({ values: z.record(z.string(), z.record(z.string(), loose({ type: z.string() }))) }),
  }),
});

/** The interactivity payloads this app asks for: button clicks and the Skip modal's submission. */
const interactivity = z.discriminatedUnion('type', [blockActions, viewSubmission]);

/** The fields of a slash command the bot reads. */
const slashCommand = loose({
  command: z.string().min(1).max(64),
  text: z.string().max(4_000),
  user_id: id,
  team_id: id,
  channel_id: id,
  response_url: z.url(),
});

/** Events API envelopes (`url_verification` and `event_callback`). */
const eventEnvelope = z.union([
  loose({ type: z.literal('url_verification'), challenge: z.string().max(512) }),
  loose({ type: z.literal('event_callback'), team_id: id, event: loose({ type: z.string().min(1) }) }),
  loose({ type: z.literal('app_rate_limited') }),
]);

/** The JSON inside `payload=` of an interactivity request, or null when it is not JSON. */
function parsePayload(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** Which schema a body must pass, from its content type and fields; the first problem, if any. */
function problemOf(raw: string, contentType: string | undefined): string | null {
  if (contentType?.includes('application/json')) {
    const parsed = eventEnvelope.safeParse(parsePayload(raw));
    return parsed.success ? null : 'the body is not a Slack Events API envelope';
  }
  const form = new URLSearchParams(raw);
  const payload = form.get('payload');
  if (payload !== null) {
    const parsed = interactivity.safeParse(parsePayload(payload));
    return parsed.success ? null : `the interactivity payload is malformed (${describe(parsed.error)})`;
  }
  const parsed = slashCommand.safeParse(Object.fromEntries(form));
  return parsed.success ? null : `the slash command is malformed (${describe(parsed.error)})`;
}

/**
 * What is wrong with the body of a Socket Mode envelope (`slash_commands`, `interactive`, `events_api`),
 * checked against the same shapes as over HTTP; null when it is shaped as Slack sends it.
 */
export function socketPayloadProblem(body: unknown): string | null {
  if (typeof body !== 'object' || body === null) return 'the envelope has no payload object';
  const b = body as { command?: unknown; type?: unknown };
  if ('command' in b) {
    const parsed = slashCommand.safeParse(body);
    return parsed.success ? null : `the slash command is malformed (${describe(parsed.error)})`;
  }
  if (b.type === 'event_callback' || b.type === 'app_rate_limited') {
    return eventEnvelope.safeParse(body).success ? null : 'the payload is not a Slack Events API envelope';
  }
  const parsed = interactivity.safeParse(body);
  return parsed.success ? null : `the interactivity payload is malformed (${describe(parsed.error)})`;
}

function describe(error: z.ZodError): string {
  const first = error.issues[0];
  return first ? `${first.path.join('.') || 'payload'}: ${first.message}` : 'unknown shape';
}

/**
 * In front of Bolt on `POST /slack/events`: a request whose Slack signature is valid but whose payload
 * does not have the shape Slack sends is answered 400 (Bolt would fail on it with a 500). The raw body is
 * kept on the request, so Bolt verifies the signature itself as usual; unsigned requests go on to Bolt,
 * which answers them 401.
 */
export function slackPayloadGuard(signingSecret: string, logger: Logger): RequestHandler {
  const raw = express.raw({ type: () => true, limit: '1mb' });
  return (req, res, next) => {
    raw(req, res, (error?: unknown) => {
      if (error) {
        next(error);
        return;
      }
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      // Bolt reads a request already read from `rawBody` (its own buffered-request convention).
      (req as typeof req & { rawBody: Buffer }).rawBody = body;
      const text = body.toString('utf8');
      const signature = req.headers['x-slack-signature'];
      const timestamp = Number(req.headers['x-slack-request-timestamp']);
      const signed =
        typeof signature === 'string' &&
        Number.isFinite(timestamp) &&
        isValidSlackRequest({
          signingSecret,
          body: text,
          headers: { 'x-slack-signature': signature, 'x-slack-request-timestamp': timestamp },
        });
      if (!signed) {
        next();
        return;
      }
      const problem = problemOf(text, req.headers['content-type']);
      if (problem) {
        logger.warn(
          { problem },
          'slack: signed request refused, its payload is not shaped as Slack sends it',
        );
        sendError(res, 400, 'invalid_body', problem);
        return;
      }
      next();
    });
  };
}
