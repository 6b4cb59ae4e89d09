import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../../bot/config.js';

const root = new URL('../../../', import.meta.url).pathname;
const SDK = /node_modules\/@opentelemetry\/(sdk-|exporter-|resources\/)/;
let child: ChildProcess | undefined;
const dirs: string[] = [];

afterEach(() => {
  if (child?.pid && child.exitCode === null) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  child = undefined;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Run bot/main.ts in local mode with `env` until it listens, stop it with SIGTERM: the modules it loaded. */
async function modulesLoadedByTheBot(env: Record<string, string> = {}): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'mdr-modules-'));
  dirs.push(dir);
  const file = join(dir, 'loaded.json');
  child = spawn(
    process.execPath,
    ['--import', 'tsx', '--import', './test/support/loaded-modules.ts', 'bot/main.ts'],
    {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        PORT: '0',
        HOST: '127.0.0.1',
        LOADED_MODULES_FILE: file,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  );
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const exited = once(child, 'exit');
  await vi.waitFor(() => expect(output).toContain('local mode: open'), { timeout: 30_000, interval: 50 });
  process.kill(-(child.pid as number), 'SIGTERM');
  const [code] = await exited;
  expect(code, output).toBe(0);
  return JSON.parse(readFileSync(file, 'utf8')) as string[];
}

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
