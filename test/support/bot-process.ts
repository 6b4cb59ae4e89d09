import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The environment variable every process a test starts carries, set to the run's id by global-setup:
 * the global teardown looks for it to find children that outlived the suite.
 */
export const CHILD_MARKER = 'MDR_TEST_CHILD_OF';

/** What a child process of this test run carries in its environment (see global-setup.ts). */
export function childMarkerEnv(): Record<string, string> {
  const run = process.env.MDR_TEST_RUN_ID;
  return run ? { [CHILD_MARKER]: run } : {};
}

/** `node <args>` from the project's root with only `env` (plus PATH, HOME and the run's marker), in its own process group. */
function spawnInGroup(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...childMarkerEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  return { child, output: () => output };
}

/**
 * Runs `script` (an ES module, through tsx) in a child process of its own group with only `env` (plus
 * PATH, HOME and the run's marker); resolves with its exit code and everything it printed once it has
 * ended. The group is killed on the way out whatever happened.
 */
export async function runModuleScript(
  script: string,
  env: Record<string, string> = {},
): Promise<{ code: number | null; output: string }> {
  const { child, output } = spawnInGroup(['--import', 'tsx', '--input-type=module', '-e', script], env);
  try {
    const [code] = await once(child, 'exit');
    return { code: code as number | null, output: output() };
  } finally {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // the group has ended
    }
  }
}

/** `npm start`'s first step: compiles dist/ when it is missing or older than the sources. */
export function buildIfStale(): void {
  execFileSync(process.execPath, ['scripts/build-if-stale.mjs'], { cwd: ROOT, stdio: 'inherit' });
}

/** A bot started as `npm start` runs it (`node dist/bot/main.js`), in its own process group. */
export interface BotProcess {
  child: ChildProcess;
  /** What the bot printed so far (stdout and stderr). */
  output(): string;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
}

/** Starts `node dist/bot/main.js` with only `env` (plus PATH, HOME and the run's marker), detached. */
export function spawnBot(env: Record<string, string>): BotProcess {
  const { child, output } = spawnInGroup(['dist/bot/main.js'], env);
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, output, exited };
}

/**
 * Ends the bot's whole process group: SIGTERM, then SIGKILL if it is still there after `graceMs`.
 * Resolves once the group leader has exited.
 */
export async function stopBot(bot: BotProcess | undefined, graceMs = 5_000): Promise<void> {
  const pid = bot?.child.pid;
  if (!bot || !pid) return;
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-pid, name);
    } catch {
      // the group is gone already
    }
  };
  signal('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const forced = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      signal('SIGKILL');
      resolve();
    }, graceMs);
  });
  await Promise.race([bot.exited, forced]);
  clearTimeout(timer);
  await bot.exited;
  // Anything else the bot started in its group goes with it.
  signal('SIGKILL');
}
