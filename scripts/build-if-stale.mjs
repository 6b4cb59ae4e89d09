// Builds the bot's JavaScript (`npm run build`: tsc -p tsconfig.build.json into dist/) when dist/ is
// missing or older than the sources, so that `npm start` runs compiled code from a fresh clone too.
// Plain JavaScript on purpose: it runs before anything is compiled. Starts that race (several bots started
// at once) build once: the others wait for the build lock, then find dist/ fresh.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
/** What tsconfig.build.json compiles, and the JSON files the code imports. */
const SOURCE_DIRS = ['bot', 'cards', 'core', 'adapters'];
const CONFIG_FILES = ['tsconfig.json', 'tsconfig.build.json'];
const LOCK = join(dist, '.build-lock');
const LOCK_STALE_MS = 5 * 60_000;

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

function* sources(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(path);
    else if (entry.name.endsWith('.json') || (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')))
      yield path;
  }
}

/** Why dist/ must be built again, or undefined when every source has its output, newer than it. */
function staleness() {
  const configChanged = Math.max(...CONFIG_FILES.map((f) => mtime(join(root, f)) ?? 0));
  for (const dir of SOURCE_DIRS) {
    for (const source of sources(join(root, dir))) {
      const out = join(dist, relative(root, source)).replace(/\.ts$/, '.js');
      const built = mtime(out);
      if (built === undefined) return `${relative(root, out)} is missing`;
      if (built < (mtime(source) ?? 0)) return `${relative(root, source)} changed`;
      if (built < configChanged) return 'the TypeScript configuration changed';
    }
  }
  return undefined;
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Take the build lock (a directory: creating it is atomic); a lock older than LOCK_STALE_MS is broken. */
function lock() {
  mkdirSync(dist, { recursive: true });
  for (;;) {
    try {
      mkdirSync(LOCK);
      return;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      const since = mtime(LOCK);
      if (since !== undefined && Date.now() - since > LOCK_STALE_MS)
        rmSync(LOCK, { recursive: true, force: true });
      else sleep(200);
    }
  }
}

/** Run tsc; false (after saying why) when the bot must not start. */
function build(reason) {
  let tsc;
  try {
    tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
  } catch {
    process.stderr.write(
      `dist/ must be built (${reason}) but TypeScript is not installed: run npm ci, then npm run build.\n`,
    );
    return false;
  }
  process.stderr.write(`Building the bot into dist/ (${reason}).\n`);
  const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (result.status === 0) return true;
  process.stderr.write('The build failed (see above): the bot was not started.\n');
  return false;
}

let built = true;
if (staleness() !== undefined) {
  lock();
  try {
    // Another start may have built while this one waited for the lock.
    const reason = staleness();
    if (reason !== undefined) built = build(reason);
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}
if (!built) process.exitCode = 1;
