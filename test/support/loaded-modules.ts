import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * Preloaded into a bot process (`node --import tsx --import ./test/support/loaded-modules.ts …`): on
 * exit, writes the paths of every module the process loaded to LOADED_MODULES_FILE: the CommonJS ones
 * (the OpenTelemetry packages are CommonJS, so a loaded SDK shows there) and the ES modules (the Azure
 * identity library, BullMQ and Bolt's dependencies are loaded as ES modules), which a load hook appends
 * to `<file>.esm` as they load.
 */
const out = process.env.LOADED_MODULES_FILE;
if (out) {
  const esm = `${out}.esm`;
  writeFileSync(esm, '');
  const hook = `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  if (url.startsWith('file:')) appendFileSync(${JSON.stringify(esm)}, url + '\\n');
  return next(url, context);
}`;
  register(`data:text/javascript,${encodeURIComponent(hook)}`);
  const { cache } = createRequire(import.meta.url);
  process.on('exit', () => {
    const modules = readFileSync(esm, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((url) => fileURLToPath(url));
    writeFileSync(out, JSON.stringify([...new Set([...Object.keys(cache), ...modules])]));
  });
}
