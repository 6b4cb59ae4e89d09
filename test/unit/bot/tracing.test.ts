import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../bot/config.js';
import { loadedModulesProbe } from '../../support/modules-loaded.js';

const SDK = /node_modules\/@opentelemetry\/(sdk-|exporter-|resources\/)/;
/** Runs bot/main.ts in local mode with `env` until it listens, stops it: the modules it loaded. */
const { modulesLoaded: modulesLoadedByTheBot, cleanUp } = loadedModulesProbe();

afterEach(cleanUp);

describe('tracing configuration', () => {
  it('is off without OTEL_EXPORTER_OTLP_ENDPOINT, on with it, under OTEL_SERVICE_NAME or mdr-bot', () => {
    expect(loadConfig({}).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: ' ' }).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4318/' }).tracing).toEqual({
      endpoint: 'http://otel-collector:4318',
      serviceName: 'mdr-bot',
    });
    expect(
      loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otlp.example.com', OTEL_SERVICE_NAME: 'mdr-eu' })
        .tracing,
    ).toEqual({ endpoint: 'https://otlp.example.com', serviceName: 'mdr-eu' });
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'otel-collector:4318' })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT: must be an http\(s\) URL/,
    );
  });
});

describe('the OpenTelemetry SDK', () => {
  it('is never loaded when OTEL_EXPORTER_OTLP_ENDPOINT is unset, and loaded when it is set', async () => {
    const off = await modulesLoadedByTheBot();
    expect(off.length).toBeGreaterThan(100);
    expect(off.filter((path) => SDK.test(path))).toEqual([]);

    const on = await modulesLoadedByTheBot({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' });
    expect(on.some((path) => path.includes('/@opentelemetry/sdk-node/'))).toBe(true);
    expect(on.some((path) => path.includes('/@opentelemetry/exporter-trace-otlp-http/'))).toBe(true);
  }, 90_000);
});
