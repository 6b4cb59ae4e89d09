import type { ErrorRequestHandler, Response } from 'express';
import { InvalidInputError, MdrError, StoreUnavailableError, WrongTenantError } from '../core/errors.js';
import type { Logger } from './logger.js';

/** Send the JSON error shape of the REST API: `{"error": {"code", "message"}}`. */
export function sendError(
  res: Response,
  status: number,
  code: string,
  message: string,
  extra: Record<string, unknown> = {},
): void {
  res.status(status).json({ error: { code, message, ...extra } });
}

/** One place that turns failures into HTTP answers: bad input is 4xx, an unreachable store 503, never a crash. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error, req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    if (error instanceof URIError) {
      // A path that is not valid percent-encoding (`/api/incidents/%ZZ1`): the caller's mistake.
      logger.warn(
        { path: req.path.slice(0, 200) },
        'request path is not valid percent-encoding: answered 400',
      );
      sendError(res, 400, 'invalid_url', 'the URL is not valid: check its percent-encoding (%XX)');
      return;
    }
    const type = (error as { type?: string }).type;
    if (type === 'entity.too.large') {
      sendError(res, 413, 'payload_too_large', 'the body is larger than 1 MiB');
      return;
    }
    if (type === 'entity.parse.failed') {
      sendError(res, 400, 'invalid_json', 'the body is not valid JSON');
      return;
    }
    if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
      sendError(res, 415, 'unsupported_encoding', 'send the body as UTF-8 JSON');
      return;
    }
    if (error instanceof InvalidInputError) {
      const first = error.issues[0];
      sendError(res, 400, 'invalid_body', error.message, {
        field: first?.path ?? '',
        issues: error.issues,
      });
      return;
    }
    if (error instanceof WrongTenantError) {
      logger.warn({ path: req.path, err: error.message }, 'ingest refused: incident of another tenant');
      sendError(res, 422, 'wrong_tenant', `${error.message}: it was not stored`);
      return;
    }
    if (error instanceof StoreUnavailableError) {
      logger.warn(
        { path: req.path, err: error.message },
        'state store unreachable: answered 503, the caller should retry',
      );
      res.setHeader('Retry-After', '5');
      sendError(
        res,
        503,
        'store_unavailable',
        'the state store is unreachable; nothing was accepted, retry later',
      );
      return;
    }
    if (error instanceof MdrError && error.code === 'conflict') {
      sendError(res, 409, 'conflict', error.message);
      return;
    }
    if (error instanceof MdrError && error.code === 'not_found') {
      sendError(res, 404, 'not_found', error.message);
      return;
    }
    logger.error({ err: error, path: req.path }, 'unexpected error while handling a request');
    sendError(res, 500, 'internal', 'unexpected error; see the bot log');
  };
}
