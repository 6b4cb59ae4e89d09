import express, { type NextFunction, type Request, type Response, Router } from 'express';
import { z } from 'zod';
import { ATTR, annotate } from '../adapters/tracing.js';
import { changeExclusions, currentExclusions } from '../core/change-exclusions.js';
import type { Actor, RefusalCode } from '../core/decisions.js';
import { incidentView } from '../core/incident-view.js';
import { ingestIncident } from '../core/ingest-incident.js';
import { listTasks } from '../core/list-tasks.js';
import { markTaskDone } from '../core/mark-task-done.js';
import type { CoreDeps } from '../core/ports.js';
import { parseTaskId, taskOf } from '../core/tasks.js';
import { parseOrThrow } from '../core/validation.js';
import { bearerMatches } from './auth.js';
import { sendError } from './http-errors.js';

export interface ApiOptions {
  deps: CoreDeps;
  ingestToken?: string;
  adminToken?: string;
}

/** Lines of one `GET /api/audit` page by default, and at most. */
export const AUDIT_PAGE_DEFAULT = 100;
export const AUDIT_PAGE_MAX = 1_000;

/** 1 MiB: the documented limit of every JSON body. */
export const BODY_LIMIT = '1mb';

/** The HTTP status of each refusal: every code has one, so a new code is a decision, never a silent 409. */
const REFUSAL_STATUS: Record<RefusalCode, number> = {
  invalid_choice: 400,
  wrong_place: 403,
  not_allowed: 403,
  not_found: 404,
  already_handled: 409,
  not_customer: 403,
  not_expert: 403,
  not_admin: 403,
  asset_excluded: 409,
  exclusion_unverifiable: 409,
};

function requireToken(tokens: () => (string | undefined)[], what: string) {
  return (req: Request, res: Response, next: NextFunction) => {
    const configured = tokens().filter(Boolean);
    if (configured.length === 0) {
      sendError(res, 401, 'unauthorized', `this API is disabled: set ${what} to enable it`);
      return;
    }
    if (!bearerMatches(req.headers.authorization, configured)) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      sendError(res, 401, 'unauthorized', `missing or wrong bearer token (Authorization: Bearer $${what})`);
      return;
    }
    next();
  };
}

const json = express.json({ limit: BODY_LIMIT, strict: true });
function requireJson(req: Request, res: Response, next: NextFunction): void {
  if (!req.is('application/json')) {
    sendError(
      res,
      415,
      'unsupported_media_type',
      'send the body as JSON with Content-Type: application/json',
    );
    return;
  }
  next();
}

const taskQuery = z.object({ status: z.enum(['pending', 'done', 'skipped']).default('pending') });
/** `GET /api/audit`: resume after `since` (a cursor from an earlier page), at most `limit` lines. */
const auditFeedQuery = z.object({
  since: z
    .string()
    .regex(
      /^\d{1,15}-\d{1,15}$/,
      'must be a cursor from X-Next-Cursor or a line\'s "cursor", e.g. 1712345678901-0',
    )
    .optional(),
  limit: z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(AUDIT_PAGE_MAX, `must be at most ${AUDIT_PAGE_MAX}`)
    .default(AUDIT_PAGE_DEFAULT),
});
const doneBody = z.object({ by: z.string().trim().min(1, 'is required: who did it').max(200) });

/** The REST API: ingest, incident state, customer tasks and exclusions, each behind its bearer token. */
export function apiRouter(options: ApiOptions): Router {
  const { deps } = options;
  const router = Router();
  const ingestAuth = requireToken(() => [options.ingestToken], 'INGEST_TOKEN');
  const readAuth = requireToken(() => [options.ingestToken, options.adminToken], 'INGEST_TOKEN');
  const adminAuth = requireToken(() => [options.adminToken], 'ADMIN_TOKEN');

  router.post('/api/incidents', ingestAuth, requireJson, json, async (req, res) => {
    const actor: Actor = { id: 'api:ingest', platform: 'api' };
    const result = await ingestIncident(deps, req.body, actor);
    annotate({ [ATTR.incidentId]: result.state.incident.id, [ATTR.platform]: 'api' });
    res.status(result.created ? 201 : 200).json({
      ...incidentView(result.state),
      added: result.added.map((a) => a.id),
    });
  });

  router.get('/api/incidents/:id', readAuth, async (req, res) => {
    const state = await deps.store.getIncident(String(req.params.id));
    if (!state) {
      sendError(res, 404, 'not_found', `no incident ${req.params.id}`);
      return;
    }
    res.json(incidentView(state));
  });

  router.get('/api/incidents/:id/audit', readAuth, async (req, res) => {
    const state = await deps.store.getIncident(String(req.params.id));
    if (!state) {
      sendError(res, 404, 'not_found', `no incident ${req.params.id}`);
      return;
    }
    res.json({ entries: await deps.store.listAudit(String(req.params.id)) });
  });

  // The audit feed for SIEM collectors: NDJSON, oldest first, one entry per line with its cursor; the
  // cursor to ask with next is in X-Next-Cursor (the request's own `since` when nothing is new).
  // X-Cursor-Gap: true when `since` is older than the oldest line kept: lines were dropped unread.
  router.get('/api/audit', readAuth, async (req, res) => {
    const { since, limit } = parseOrThrow(auditFeedQuery, req.query, 'query');
    const [page, gap] = await Promise.all([
      deps.store.listAuditFeed(since ?? null, limit),
      since === undefined ? false : deps.store.auditFeedGap(since),
    ]);
    const next = page.at(-1)?.cursor ?? since;
    if (next !== undefined) res.setHeader('X-Next-Cursor', next);
    res.setHeader('X-Cursor-Gap', String(gap));
    res.setHeader('Cache-Control', 'no-store');
    res.type('application/x-ndjson');
    res.send(page.map(({ cursor, entry }) => `${JSON.stringify({ cursor, ...entry })}\n`).join(''));
  });

  router.get('/api/tasks', readAuth, async (req, res) => {
    const { status } = parseOrThrow(taskQuery, req.query, 'query');
    res.json({ tasks: await listTasks(deps, status) });
  });

  router.post('/api/tasks/:id/done', ingestAuth, requireJson, json, async (req, res) => {
    const ref = parseTaskId(String(req.params.id));
    if (!ref) {
      sendError(res, 404, 'not_found', `no task ${req.params.id}: task ids look like 48213:act-3`);
      return;
    }
    const { by } = parseOrThrow(doneBody, req.body ?? {});
    const result = await markTaskDone(deps, ref, { id: `api:${by}`, platform: 'api' });
    if (!result.ok) {
      sendError(res, REFUSAL_STATUS[result.code], result.code, result.message);
      return;
    }
    res.json({ task: taskOf(result.action) });
  });

  router.get('/api/exclusions', adminAuth, async (_req, res) => {
    res.json(await currentExclusions(deps));
  });

  router.put('/api/exclusions', adminAuth, requireJson, json, async (req, res) => {
    const result = await changeExclusions(
      deps,
      { op: 'replace', exclusions: req.body },
      { id: 'api:admin', platform: 'api' },
    );
    if (!result.ok) {
      sendError(res, 403, result.code, result.message);
      return;
    }
    res.json(result.exclusions);
  });

  return router;
}
