import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

/** Prometheus metrics of one process, served at `GET /metrics`. */
export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: 'mdr_http_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'mdr_http_request_duration_seconds',
    help: 'HTTP request duration by route',
    labelNames: ['route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly jobs = new Counter({
    name: 'mdr_jobs_total',
    help: 'Background jobs by name and outcome',
    labelNames: ['name', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly webhookEvents = new Counter({
    name: 'mdr_webhook_events_total',
    help: 'Webhook deliveries queued by their writer (one per event and webhook), queued again by the relay from the audit feed (relayed; a duplicate is dropped by its id), or events not queued by their writer (not_queued)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly webhookDeliveries = new Counter({
    name: 'mdr_webhook_deliveries_total',
    help: 'Webhook delivery tries by outcome: delivered, retried, failed (given up), refused (address not in the policy)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  constructor() {
    // The event-loop delay histogram samples every `eventLoopMonitoringPrecision` ms: prom-client's 10 ms
    // wakes an idle process 100 times a second (most of its idle CPU). Every 100 ms still catches each
    // stall of 100 ms or more, the ones that delay an answer.
    collectDefaultMetrics({ register: this.registry, prefix: 'mdr_', eventLoopMonitoringPrecision: 100 });
  }
}
