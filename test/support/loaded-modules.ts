import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/**
 * Preloaded into a bot process (`node --import tsx --import ./test/support/loaded-modules.ts …`): on
 * exit, writes the paths of every CommonJS module the process loaded to LOADED_MODULES_FILE. The
 * OpenTelemetry packages are CommonJS, so a loaded SDK shows there.
 */
const out = process.env.LOADED_MODULES_FILE;
if (out) {
  const { cache } = createRequire(import.meta.url);
  process.on('exit', () => writeFileSync(out, JSON.stringify(Object.keys(cache))));
}
