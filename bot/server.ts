import express, { type Express, type Request, type RequestHandler } from 'express';
import { apiRouter } from './api.js';
import { errorHandler, sendError } from './http-errors.js';
import type { Runtime } from './runtime.js';
import { traceRequests } from './tracing.js';

/** Why a part of the bot cannot serve (`/readyz` answers 503 with it), or undefined while it can. */
export type ReadinessCheck = () => { code: string; message: string } | undefined;

/** Extra handlers mounted on the one port: Slack, Teams, the preview page; and what `/readyz` checks besides the store. */
export interface Mounts {
  slack?: RequestHandler;
  teams?: RequestHandler;
  preview?: express.Router;
  readiness?: ReadinessCheck[];
}

/** Label of every request no route template matched: one series, whatever the path. */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * The metric label of a request: the template of the route that handled it (`/api/incidents/:id`,
 * with a mounted router's base), never the path itself, so no request can create new series.
 */
export function routeLabel(req: Request): string {
  const path: unknown = req.route?.path;
  return typeof path === 'string' ? `${req.baseUrl ?? ''}${path}` : UNMATCHED_ROUTE;
}

/** The HTTP application: every route of the bot on one port. */
export function createHttpApp(runtime: Runtime, mounts: Mounts = {}): Express {
  const { config, store, metrics, logger } = runtime;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  // No ETag: it hashes every JSON answer, and the API's answers (incident state, ingest results) are not
  // fetched again conditionally.
  app.set('etag', false);

  if (config.tracing) app.use(traceRequests(routeLabel));
  app.use((req, res, next) => {
    const stop = metrics.httpDuration.startTimer();
    res.on('finish', () => {
      const route = routeLabel(req);
      metrics.httpRequests.inc({ route, status: String(res.statusCode) });
      stop({ route });
    });
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    try {
      await store.ping();
    } catch (error) {
      sendError(res, 503, 'store_unavailable', `not ready: ${(error as Error).message}`);
      return;
    }
    for (const check of mounts.readiness ?? []) {
      const down = check();
      if (down) {
        sendError(res, 503, down.code, `not ready: ${down.message}`);
        return;
      }
    }
    res.json({ status: 'ready', store: runtime.storeKind });
  });
  app.get('/metrics', async (_req, res) => {
    res.setHeader('Content-Type', metrics.registry.contentType);
    res.send(await metrics.registry.metrics());
  });

  if (mounts.slack) app.post('/slack/events', mounts.slack);
  if (mounts.teams) app.post('/api/messages', mounts.teams);
  else {
    app.post('/api/messages', (_req, res) => {
      sendError(res, 404, 'not_found', 'Teams is not enabled');
    });
  }

  app.use(apiRouter({ deps: runtime.deps, ingestToken: config.ingestToken, adminToken: config.adminToken }));
  if (mounts.preview) app.use(mounts.preview);

  app.use((req, res) => {
    sendError(res, 404, 'not_found', `no route ${req.method} ${req.path}`);
  });
  app.use(errorHandler(logger));
  return app;
}
