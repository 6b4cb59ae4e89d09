import { createRequire } from 'node:module';
import express, { type NextFunction, type Request, type Response, Router } from 'express';
import { z } from 'zod';
import { PreviewOutbox } from '../../adapters/graph-mailer.js';
import { ATTR, annotate } from '../../adapters/tracing.js';
import { buildIncidentView } from '../../cards/incident-view.js';
import { renderSlackMessage } from '../../cards/slack/render.js';
import { renderTeamsCard, viewerOf } from '../../cards/teams/render.js';
import { SCAN_TYPES } from '../../core/actions.js';
import { BUTTON_VERBS, USE_CASE_OF } from '../../core/button-verbs.js';
import { type Actor, type Decision, recordRefusal } from '../../core/decisions.js';
import { ingestIncident } from '../../core/ingest-incident.js';
import { managedStatus } from '../../core/managed-status.js';
import { rolesOf } from '../../core/policy.js';
import { parseOrThrow } from '../../core/validation.js';
import sampleIncident from '../../samples/incident-48213.json' with { type: 'json' };
import { sendError } from '../http-errors.js';
import { crossSiteProblem, localOnlyProblem } from '../local-only.js';
import type { Runtime } from '../runtime.js';
import { previewPage } from './page.js';
import { slackBlocksToHtml } from './slack-html.js';

const require = createRequire(import.meta.url);
const SAMPLE = JSON.stringify(sampleIncident);
const CUSTOMER = 'preview:customer';

const actionBody = z.object({
  verb: z.enum(BUTTON_VERBS),
  incidentId: z.string().min(1).max(128),
  actionId: z.string().min(1).max(128),
  as: z.string().min(1).max(200),
  /** The antivirus scan chosen on the card (approve only): Quick or Full, nothing else. */
  scanType: z.enum(SCAN_TYPES).optional(),
  /** What the clicker typed under Skip. */
  reason: z.string().max(2_000).optional(),
});

const PREVIEW_ACTOR: Actor = { id: 'preview:unverified', platform: 'preview' };

/** Refuse (403, audited) what `problemOf` finds wrong with a request; pass the others on. */
function guard(runtime: Runtime, problemOf: (req: Request) => string | undefined, what: string) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const problem = problemOf(req);
    if (!problem) {
      next();
      return;
    }
    const path = req.originalUrl.split('?')[0] ?? '';
    runtime.logger.warn({ path, reason: problem }, `preview request refused: ${what}`);
    recordRefusal(
      runtime.deps,
      PREVIEW_ACTOR,
      `preview:${req.method} ${path}`.slice(0, 100),
      `not_allowed: ${problem}`,
    ).then(() => sendError(res, 403, 'forbidden', `${what}: ${problem}`), next);
  };
}

/**
 * The local preview channel (`GET /`): every incident's Teams card and Slack message, with working
 * buttons through the same core, acting as a chosen identity. Local mode only: this machine only, not
 * through a proxy or tunnel (DNS rebinding included), and its state-changing routes refuse cross-site
 * requests. Every refusal is audited.
 */
export function previewRouter(runtime: Runtime): Router {
  const { deps, store, config } = runtime;
  const router = Router();
  const identities = () => [
    ...config.policy.roles.experts.map((id) => ({ id, label: `Expert (${id})` })),
    ...config.policy.roles.admins.map((id) => ({ id, label: `Customer admin (${id})` })),
    { id: CUSTOMER, label: `Customer (${CUSTOMER})` },
  ];
  const allowed = (id: string) => identities().some((i) => i.id === id);
  const actorFor = (id: string): Actor => ({ id, platform: 'preview' });

  const localOnly = guard(
    runtime,
    localOnlyProblem,
    'the preview page answers this machine only, not through a proxy or tunnel',
  );
  const sameSite = guard(runtime, crossSiteProblem, 'the preview page acts only for its own page');
  router.use('/preview', localOnly);
  router.use('/preview/api', (req, res, next) => {
    if (req.method === 'GET' || req.method === 'HEAD') next();
    else sameSite(req, res, next);
  });
  router.get('/', localOnly, (_req, res) => {
    res.type('html').send(previewPage());
  });
  router.get('/preview/vendor/adaptivecards.min.js', (_req, res) => {
    res.type('js').sendFile(require.resolve('adaptivecards/dist/adaptivecards.min.js'));
  });

  router.get('/preview/api/state', async (req, res) => {
    const as =
      typeof req.query.as === 'string' && allowed(req.query.as)
        ? req.query.as
        : (identities()[0]?.id ?? CUSTOMER);
    const roles = rolesOf(config.policy.roles, as);
    const viewer = viewerOf(roles);
    const incidents = [];
    for (const summary of await store.listIncidents(20)) {
      const state = await store.getIncident(summary.id);
      if (!state) continue;
      const view = buildIncidentView(state, { apiBaseUrl: config.publicUrl });
      incidents.push({
        id: state.incident.id,
        title: state.incident.title,
        managedStatus: managedStatus(state.actions),
        teams: renderTeamsCard(view, { viewer }),
        slackHtml: slackBlocksToHtml(renderSlackMessage(view).blocks),
      });
    }
    // Local mode keeps the customer-task emails here instead of sending them.
    const emails = deps.mailer instanceof PreviewOutbox ? deps.mailer.list() : [];
    res.json({ as, identities: identities(), incidents, emails });
  });

  router.post('/preview/api/action', express.json({ limit: '16kb' }), async (req, res) => {
    const body = parseOrThrow(actionBody, req.body ?? {});
    if (!allowed(body.as)) {
      sendError(res, 400, 'invalid_body', `as: unknown identity ${body.as}`);
      return;
    }
    const ref = { incidentId: body.incidentId, actionId: body.actionId };
    if (body.scanType && body.verb !== 'approve') {
      sendError(res, 400, 'invalid_body', 'scanType: only an approval chooses a scan');
      return;
    }
    annotate({
      [ATTR.platform]: 'preview',
      [ATTR.incidentId]: ref.incidentId,
      [ATTR.actionId]: ref.actionId,
      [ATTR.verb]: body.verb,
    });
    const actor = actorFor(body.as);
    const decision: Decision = await USE_CASE_OF[body.verb](deps, ref, actor, {
      ...(body.scanType ? { scanType: body.scanType } : {}),
      ...(body.reason !== undefined ? { reason: body.reason } : {}),
    });
    if (decision.ok) annotate({ [ATTR.actionType]: decision.action.type });
    res.json(
      decision.ok
        ? {
            ok: true,
            message: `${body.verb} ${body.actionId}: ${decision.action.state}`,
            state: decision.action.state,
          }
        : { ok: false, code: decision.code, message: decision.message },
    );
  });

  router.post('/preview/api/sample', async (_req, res) => {
    const body = JSON.parse(SAMPLE) as { incident: { id: string } };
    const count = (await store.listIncidents(1_000)).length;
    body.incident.id = String(48213 + count);
    const result = await ingestIncident(deps, body, { id: 'preview:sample', platform: 'preview' });
    res.status(201).json({
      ok: true,
      id: result.state.incident.id,
      message: `Sample incident ${result.state.incident.id} received`,
    });
  });

  return router;
}
