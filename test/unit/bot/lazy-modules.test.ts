import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { send } from '../../support/bot-server.js';

const root = new URL('../../../', import.meta.url).pathname;
const BOT_FRAMEWORK = /node_modules\/(botbuilder|botframework-connector)\//;
const AZURE_IDENTITY = /node_modules\/@azure\/identity\//;
const RATE_LIMITER = /node_modules\/rate-limiter-flexible\//;
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

const DEFENDER = {
  DEFENDER_TENANT_ID: '11111111-2222-4333-8444-555555555555',
  DEFENDER_CLIENT_ID: '66666666-7777-4888-8999-000000000000',
  DEFENDER_CLIENT_SECRET: 'not-a-real-secret-0123456789',
};
const LISTENING = /(?:local mode: open http:\/\/localhost:|listening on port )(\d+)/;

/**
 * Run bot/main.ts with `env` (none: local mode, Teams on for this machine), do `use` against it once it
 * listens, stop it with SIGTERM: the modules it loaded.
 */
async function modulesLoaded(
  env: Record<string, string> = {},
  use: (url: string) => Promise<void> = async () => {},
): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'mdr-lazy-'));
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
  await vi.waitFor(() => expect(output).toMatch(LISTENING), { timeout: 30_000, interval: 50 });
  const port = LISTENING.exec(output)?.[1];
  await use(`http://127.0.0.1:${port}`);
  process.kill(-(child.pid as number), 'SIGTERM');
  const [code] = await exited;
  expect(code, output).toBe(0);
  return JSON.parse(readFileSync(file, 'utf8')) as string[];
}

describe('modules loaded on first use', () => {
  it('the Azure identity library and the rate limiter are not loaded at start with Defender configured', async () => {
    const loaded = await modulesLoaded(DEFENDER);
    expect(loaded.length).toBeGreaterThan(100);
    expect(loaded.filter((m) => AZURE_IDENTITY.test(m))).toEqual([]);
    expect(loaded.filter((m) => RATE_LIMITER.test(m))).toEqual([]);
  });

  it('Bot Framework is not loaded at start with Teams on', async () => {
    const loaded = await modulesLoaded();
    expect(loaded.length).toBeGreaterThan(100);
    expect(loaded.filter((m) => BOT_FRAMEWORK.test(m))).toEqual([]);
  });

  it('Bot Framework is loaded by the first Teams activity, which it answers', async () => {
    let status = 0;
    const loaded = await modulesLoaded({}, async (url) => {
      const res = await send(`${url}/api/messages`, {
        body: {
          type: 'conversationUpdate',
          id: 'a1',
          channelId: 'emulator',
          serviceUrl: 'http://127.0.0.1:9/',
          from: { id: 'u1' },
          recipient: { id: 'bot' },
          conversation: { id: 'c1' },
          membersAdded: [],
        },
      });
      status = res.status;
    });
    expect(status).toBeLessThan(300);
    expect(loaded.some((m) => BOT_FRAMEWORK.test(m))).toBe(true);
  });
});
