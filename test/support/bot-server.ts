import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LocalQueue } from '../../adapters/local-queue.js';
import { type Config, loadConfig } from '../../bot/config.js';
import { createLogger } from '../../bot/logger.js';
import { assembleRuntime, type Runtime, type RuntimeParts } from '../../bot/runtime.js';
import { createHttpApp, type Mounts } from '../../bot/server.js';
import { startTracing } from '../../bot/tracing.js';

export const INGEST_TOKEN = 'ingest-token-0123456789abcdef';
export const ADMIN_TOKEN = 'admin-token-0123456789abcdef';

/** A running bot on a loopback port, built exactly as production builds it, with chosen parts. */
export interface BotServer {
  url: string;
  runtime: Runtime;
  close(): Promise<void>;
}

export async function startBot(
  options: {
    env?: Record<string, string>;
    parts?: Partial<RuntimeParts>;
    mounts?: (runtime: Runtime) => Mounts | Promise<Mounts>;
    config?: (config: Config) => Config;
  } = {},
): Promise<BotServer> {
  const base = loadConfig({ INGEST_TOKEN, ADMIN_TOKEN, LOG_LEVEL: 'silent', ...options.env });
  const config = options.config ? options.config(base) : base;
  const logger = createLogger(config.logLevel);
  // As bot/main.ts does: the SDK only with OTEL_EXPORTER_OTLP_ENDPOINT, flushed when the bot closes.
  const tracing = config.tracing ? await startTracing(config.tracing, logger) : undefined;
  const runtime = assembleRuntime(config, logger, {
    queue: options.parts?.queue ?? new LocalQueue({ logger, backoffMs: 20 }),
    ...options.parts,
  });
  await runtime.queue.start();
  await runtime.startTimers();
  const app = createHttpApp(runtime, await options.mounts?.(runtime));
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    runtime,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await runtime.close();
      await tracing?.shutdown();
    },
  };
}

/**
 * Waits until the bot's in-process queue is drained (no job waiting, delayed, retrying or running), so
 * that what did not happen can be asserted: nothing is left that could still do it.
 */
export async function drained(bot: BotServer): Promise<void> {
  const queue = bot.runtime.queue;
  if (!(queue instanceof LocalQueue)) throw new Error('drained() needs the in-process queue (LocalQueue)');
  await queue.idle();
}

/** `fetch` with a JSON body and a bearer token. */
export async function send(
  url: string,
  options: {
    method?: string;
    token?: string;
    body?: unknown;
    raw?: string;
    headers?: Record<string, string>;
  } = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.raw !== undefined || options.body !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = options.raw ?? JSON.stringify(options.body);
  }
  const res = await fetch(url, { method: options.method ?? (body ? 'POST' : 'GET'), headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed, headers: res.headers };
}
