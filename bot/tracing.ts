import {
  context,
  DiagLogLevel,
  diag,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import type { Request, RequestHandler } from 'express';
import type { JobQueue } from '../adapters/job-queue.js';
import { TracedExecutor, TracedQueue } from '../adapters/tracing.js';
import type { ResponseExecutor } from '../core/ports.js';
import type { Config } from './config.js';
import type { Logger } from './logger.js';

/**
 * Flushing the last spans at shutdown waits at most this long, well inside STOP_LIMIT_MS (bot/stop.ts):
 * an unreachable collector never holds the stop up.
 */
export const TRACING_SHUTDOWN_MS = 2_000;

/** The OpenTelemetry SDK of this process, once started. */
export interface Tracing {
  /** Export the spans still buffered and stop; bounded by TRACING_SHUTDOWN_MS. */
  shutdown(): Promise<void>;
}

/**
 * Start exporting traces to `OTEL_EXPORTER_OTLP_ENDPOINT` (OTLP/HTTP, JSON, at `<endpoint>/v1/traces`).
 * The SDK is imported here, on demand: a process without the variable never loads it, and its spans
 * go to the API's no-op tracer. Only traces are exported: metrics stay on prom-client (`/metrics`),
 * logs on stdout. Standard variables such as OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER and
 * OTEL_RESOURCE_ATTRIBUTES apply as usual.
 */
export async function startTracing(
  tracing: NonNullable<Config['tracing']>,
  logger: Logger,
): Promise<Tracing> {
  const [{ NodeSDK }, { OTLPTraceExporter }, { envDetector, hostDetector }] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  // The SDK's own complaints (a collector that cannot be reached, say) go to the bot's log.
  const log = logger.child({ component: 'tracing' });
  diag.setLogger(
    {
      error: (message) => log.warn(message),
      warn: (message) => log.warn(message),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  const sdk = new NodeSDK({
    serviceName: tracing.serviceName,
    traceExporter: new OTLPTraceExporter({
      url: `${tracing.endpoint}/v1/traces`,
      timeoutMillis: TRACING_SHUTDOWN_MS,
    }),
    // No process detector: the command line is not the collector's business.
    resourceDetectors: [envDetector, hostDetector],
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
  });
  sdk.start();
  log.info(
    { endpoint: tracing.endpoint, serviceName: tracing.serviceName },
    'tracing: on, spans exported over OTLP/HTTP',
  );
  return {
    async shutdown() {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, TRACING_SHUTDOWN_MS);
        timer.unref();
      });
      await Promise.race([sdk.shutdown().catch(() => {}), late]);
      clearTimeout(timer);
      trace.disable();
      propagation.disable();
      context.disable();
      diag.disable();
    },
  };
}

/** With tracing on, the job queue carries each trace to the jobs it starts, on any replica. */
export function traceQueue(config: Config, queue: JobQueue): JobQueue {
  return config.tracing ? new TracedQueue(queue) : queue;
}

/** With tracing on, each submission and status check of the executor has a span naming the action. */
export function traceExecutor(config: Config, executor: ResponseExecutor): ResponseExecutor {
  return config.tracing ? new TracedExecutor(executor) : executor;
}

/**
 * A server span per HTTP request, continuing the caller's `traceparent` when it sends one, named after
 * the route template (`POST /api/incidents`, never the path), with the method and status only.
 */
export function traceRequests(routeLabel: (req: Request) => string): RequestHandler {
  return (req, res, next) => {
    const parent = propagation.extract(ROOT_CONTEXT, req.headers);
    const span = trace
      .getTracer('mdr-bot')
      .startSpan(
        req.method,
        { kind: SpanKind.SERVER, attributes: { 'http.request.method': req.method } },
        parent,
      );
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      const route = routeLabel(req);
      span.updateName(`${req.method} ${route}`);
      span.setAttributes({ 'http.route': route, 'http.response.status_code': res.statusCode });
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    };
    res.once('finish', end);
    res.once('close', end);
    context.with(trace.setSpan(parent, span), next);
  };
}
