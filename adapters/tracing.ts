import {
  type Attributes,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import type { ActionRecord } from '../core/model.js';
import type { RemoteCheck, ResponseExecutor, SubmitContext, SubmitResult } from '../core/ports.js';
import type { JobHandler, JobOptions, JobQueue } from './job-queue.js';

/**
 * Span helpers on the OpenTelemetry API alone. Until an SDK is registered (OTEL_EXPORTER_OTLP_ENDPOINT,
 * bot/tracing.ts) the API hands out its no-op tracer, so these cost a function call and nothing more.
 */

/** The attribute names the bot sets; ids and kinds only, never tokens or incident text. */
export const ATTR = {
  incidentId: 'mdr.incident.id',
  actionId: 'mdr.action.id',
  actionType: 'mdr.action.type',
  platform: 'mdr.platform',
  verb: 'mdr.verb',
  job: 'mdr.job.name',
} as const;

const tracer = () => trace.getTracer('mdr-bot');

/** Run `fn` in a new span (a child of the active one); the span ends with it, marked as failed on a throw. */
export function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  options: { kind?: SpanKind; parent?: ReturnType<typeof context.active> } = {},
): Promise<T> {
  return tracer().startActiveSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, attributes },
    options.parent ?? context.active(),
    async (span) => {
      try {
        return await fn(span);
      } catch (error) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: errorName(error) });
        throw error;
      } finally {
        span.end();
      }
    },
  );
}

/** `withSpan` for a call to another service (Defender, Graph, Slack, the Bot Connector). */
export function withClientSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  return withSpan(name, attributes, fn, { kind: SpanKind.CLIENT });
}

/** Add attributes to the active span (the request or job being handled); nothing when there is none. */
export function annotate(attributes: Attributes): void {
  trace.getActiveSpan()?.setAttributes(attributes);
}

/** An error's class and code, never its message (which may quote a remote answer). */
function errorName(error: unknown): string {
  if (!(error instanceof Error)) return 'error';
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? `${error.name} ${code}` : error.name;
}

/** The ids a job's data names, as span attributes. */
function jobAttributes(name: string, data: Record<string, unknown>): Attributes {
  const attributes: Attributes = { [ATTR.job]: name };
  if (typeof data.incidentId === 'string') attributes[ATTR.incidentId] = data.incidentId;
  if (typeof data.actionId === 'string') attributes[ATTR.actionId] = data.actionId;
  if (typeof data.platform === 'string') attributes[ATTR.platform] = data.platform;
  return attributes;
}

const isRecord = (data: unknown): data is Record<string, unknown> =>
  typeof data === 'object' && data !== null && !Array.isArray(data);

/**
 * The job queue with the trace carried across it: `add` stores the active span's W3C `traceparent`
 * (and `tracestate`) in the job data, and each job runs in a consumer span continuing it, on whichever
 * replica takes the job. Handlers get the data without those fields.
 */
export class TracedQueue implements JobQueue {
  constructor(private readonly inner: JobQueue) {}

  add(name: string, data: unknown, options?: JobOptions): Promise<void> {
    const carrier: Record<string, string> = {};
    propagation.inject(context.active(), carrier);
    if (!carrier.traceparent || !isRecord(data)) return this.inner.add(name, data, options);
    const traced = {
      ...data,
      traceparent: carrier.traceparent,
      ...(carrier.tracestate ? { tracestate: carrier.tracestate } : {}),
    };
    return this.inner.add(name, traced, options);
  }

  has(name: string, id: string): Promise<boolean> {
    return this.inner.has(name, id);
  }

  every(name: string, everyMs: number, data?: unknown): Promise<void> {
    return this.inner.every(name, everyMs, data);
  }

  async dropSchedule(lane: string, name: string): Promise<void> {
    await this.inner.dropSchedule?.(lane, name);
  }

  process(name: string, handler: JobHandler): void {
    this.inner.process(name, (data, context) => {
      if (!isRecord(data)) {
        return withSpan(`job ${name}`, { [ATTR.job]: name }, () => handler(data, context), {
          kind: SpanKind.CONSUMER,
        });
      }
      const { traceparent, tracestate, ...rest } = data;
      const carrier: Record<string, string> = {};
      if (typeof traceparent === 'string') carrier.traceparent = traceparent;
      if (typeof tracestate === 'string') carrier.tracestate = tracestate;
      // No traceparent (a periodic job, or one queued before tracing was on): a trace of its own.
      const parent = propagation.extract(ROOT_CONTEXT, carrier);
      return withSpan(`job ${name}`, jobAttributes(name, rest), () => handler(rest, context), {
        kind: SpanKind.CONSUMER,
        parent,
      });
    });
  }

  start(): Promise<void> {
    return this.inner.start();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** The executor with a span around each submission and status check, naming the action. */
export class TracedExecutor implements ResponseExecutor {
  constructor(private readonly inner: ResponseExecutor) {}

  get dryRun(): boolean {
    return this.inner.dryRun;
  }

  submit(action: ActionRecord, submitContext: SubmitContext): Promise<SubmitResult> {
    return withSpan(
      `submit ${action.type}`,
      {
        [ATTR.incidentId]: action.incidentId,
        [ATTR.actionId]: action.id,
        [ATTR.actionType]: action.type,
        'mdr.dry_run': this.inner.dryRun,
      },
      async (span) => {
        const result = await this.inner.submit(action, submitContext);
        span.setAttribute('mdr.submit.result', result.kind);
        return result;
      },
    );
  }

  check(actions: ActionRecord[]): Promise<RemoteCheck[]> {
    return withSpan('check submitted actions', { 'mdr.actions.count': actions.length }, () =>
      this.inner.check(actions),
    );
  }
}
