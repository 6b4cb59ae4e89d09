import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, vi } from 'vitest';
import { childMarkerEnv } from './bot-process.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LISTENING = /(?:local mode: open http:\/\/localhost:|listening on port )(\d+)/;

/**
 * Runs bot/main.ts (from source, with ./loaded-modules.ts preloaded) to learn which modules it loads.
 * Call `cleanUp` in afterEach: it kills a bot left running and removes the temporary files.
 */
export function loadedModulesProbe() {
  let child: ChildProcess | undefined;
  const dirs: string[] = [];

  /**
   * Run the bot with `env` (none: local mode), do `use` against it once it listens, stop it with
   * SIGTERM: the modules it loaded.
   */
  async function modulesLoaded(
    env: Record<string, string> = {},
    use: (url: string) => Promise<void> = async () => {},
  ): Promise<string[]> {
    const dir = mkdtempSync(join(tmpdir(), 'mdr-modules-'));
    dirs.push(dir);
    const file = join(dir, 'loaded.json');
    child = spawn(
      process.execPath,
      ['--import', 'tsx', '--import', './test/support/loaded-modules.ts', 'bot/main.ts'],
      {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '/tmp',
          PORT: '0',
          HOST: '127.0.0.1',
          LOADED_MODULES_FILE: file,
          ...childMarkerEnv(),
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
    await vi.waitFor(() => expect(output).toMatch(LISTENING), { timeout: 30_000, interval: 50 });
    const port = LISTENING.exec(output)?.[1];
    await use(`http://127.0.0.1:${port}`);
    process.kill(-(child.pid as number), 'SIGTERM');
    const [code] = await exited;
    expect(code, output).toBe(0);
    return JSON.parse(readFileSync(file, 'utf8')) as string[];
  }

  function cleanUp(): void {
    if (child?.pid && child.exitCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    child = undefined;
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }

  return { modulesLoaded, cleanUp };
}
