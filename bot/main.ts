import type { AddressInfo } from 'node:net';
import { buildRuntime, describeRuntime } from './compose.js';
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './logger.js';
import { createPlatforms } from './platforms.js';
import { createHttpApp } from './server.js';
import { STOP_LIMIT_MS } from './stop.js';
import { startTracing } from './tracing.js';

/** Process entry: configuration, runtime, one HTTP port, graceful stop on SIGINT/SIGTERM. */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(
        `${error.message}\nThe bot did not start. Fix the values above (see README.md, Configuration).\n`,
      );
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel);
  // Before anything makes a span: the SDK is loaded only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
  const tracing = config.tracing ? await startTracing(config.tracing, logger) : undefined;
  const runtime = buildRuntime(config, logger);
  const platforms = await createPlatforms(runtime, process.env);
  const app = createHttpApp(runtime, platforms.mounts);
  await runtime.queue.start();
  // The Graph poll and the upkeep run as queue jobs, once per interval across all replicas.
  await runtime.startTimers();

  // No HOST: every interface (IPv6 and IPv4 where the machine has them), but this machine only in
  // local mode, where the Teams endpoint and the preview page run without credentials.
  const host = config.host ?? (config.localMode ? '127.0.0.1' : undefined);
  const server = host ? app.listen(config.port, host) : app.listen(config.port);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  for (const line of describeRuntime(runtime)) logger.info(line);
  const url = `http://localhost:${port}/`;
  logger.info(
    { port, host: host ?? 'all interfaces' },
    config.localMode ? `local mode: open ${url} to see the cards` : `listening on port ${port}`,
  );

  const stop = async (signal: string) => {
    logger.info({ signal }, 'stopping');
    setTimeout(() => {
      logger.error({ limitMs: STOP_LIMIT_MS }, 'not stopped in time: exiting now');
      process.exit(1);
    }, STOP_LIMIT_MS).unref();
    server.close();
    // Closing the queue waits for running jobs: a poll or an upkeep run is finished, never cut short.
    await runtime.close().catch((error: unknown) => logger.error({ err: error }, 'error while stopping'));
    // The spans of the jobs that just finished, flushed within TRACING_SHUTDOWN_MS.
    await tracing?.shutdown();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((error: unknown) => {
  process.stderr.write(
    `The bot could not start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
