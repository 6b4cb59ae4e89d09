import { type ChildProcess, spawn } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/redis-server.js';

const root = new URL('../../', import.meta.url).pathname;
let child: ChildProcess | undefined;

afterEach(() => {
  // The bot runs in its own process group (npm, tsx, node): stop all of it.
  if (child?.pid && child.exitCode === null) {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  child = undefined;
});

/** `npm start` with only `env` (no HOST), in its own process group; resolves once it printed `until`. */
async function startBot(env: Record<string, string>, until: RegExp) {
  const port = await freePort();
  child = spawn('npm', ['start', '--silent'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      PORT: String(port),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      output += d;
      if (until.test(output)) resolve();
    };
    child?.stdout?.on('data', onData);
    child?.stderr?.on('data', onData);
    child?.once('exit', (code) => reject(new Error(`the bot exited (${code}):\n${output}`)));
  });
  return { port, output: () => output };
}

const lanAddress = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;

describe('start-up', () => {
  it('listens on 127.0.0.1 only in local mode when HOST is not set', async () => {
    const { port, output } = await startBot({}, /local mode: open/);
    expect(output()).toContain('"host":"127.0.0.1"');
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    if (lanAddress) await expect(fetch(`http://${lanAddress}:${port}/healthz`)).rejects.toThrow();
  });

  it('says that Teams is off without MicrosoftAppId outside local mode, and how to turn it on', async () => {
    const { port, output } = await startBot(
      {
        HOST: '127.0.0.1',
        SLACK_BOT_TOKEN: 'xoxb-1-2-3',
        SLACK_SIGNING_SECRET: 'abcdef0123456789abcdef',
        SLACK_API_URL: 'http://127.0.0.1:9/api/',
        ALLOW_INSECURE_URLS: 'true',
      },
      /listening on port/,
    );
    expect(output()).toMatch(
      /teams: off \(set MicrosoftAppId, MicrosoftAppPassword and MicrosoftAppTenantId/,
    );
    const res = await fetch(`http://127.0.0.1:${port}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'message', channelId: 'msteams', text: 'help' }),
    });
    expect(res.status).toBe(401);
  });
});
