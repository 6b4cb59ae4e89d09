import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { freePort } from '../support/redis-server.js';

const root = new URL('../../', import.meta.url).pathname;
let child: ChildProcess | undefined;

afterEach(() => {
  // npm starts the bot as its own child: end the whole process group, not npm alone.
  if (child?.pid && child.exitCode === null) {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  child = undefined;
});

async function waitForHealth(url: string, deadlineMs: number): Promise<Response> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await fetch(url);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 200)); // polling until the port answers
    }
  }
}

/** `npm start` on a free loopback port with only `env` set; `output()` is what it printed so far. */
async function startOnFreePort(env: Record<string, string> = {}) {
  const port = await freePort();
  child = spawn('npm', ['start', '--silent'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      PORT: String(port),
      HOST: '127.0.0.1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const health = await waitForHealth(`http://127.0.0.1:${port}/healthz`, 25_000);
  return { base: `http://127.0.0.1:${port}`, port, health, output: () => output };
}

describe('npm start', () => {
  it('starts with an empty environment and answers /healthz', async () => {
    const { health, port, output } = await startOnFreePort();
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    expect(output()).toContain('NOT durable');
    expect(output()).toContain(`local mode: open http://localhost:${port}/`);
  });

  it('serves Slack on /slack/events when configured, refusing unsigned requests, though Slack is unreachable', async () => {
    const { base, output } = await startOnFreePort({
      SLACK_BOT_TOKEN: 'xoxb-1-2-3',
      SLACK_SIGNING_SECRET: 'abcdef0123456789abcdef',
      SLACK_API_URL: 'http://127.0.0.1:9/api/',
      ALLOW_INSECURE_URLS: 'true',
    });
    const res = await fetch(`${base}/slack/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'payload=%7B%7D',
    });
    expect(res.status).toBe(401);
    expect(output()).toContain('slack: on');
    expect(output()).toContain('ALLOW_INSECURE_URLS=true: http:// base URLs are allowed');
    await vi.waitFor(() => expect(output()).toContain('auth.test failed'), { timeout: 10_000, interval: 50 });
    expect(output()).toContain('check SLACK_BOT_TOKEN');
    expect(output()).not.toContain('xoxb-1-2-3');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/`)).status).toBe(404);
  });

  it('stops at once with a message naming the bad variable', async () => {
    child = spawn('npm', ['start', '--silent'], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', SLACK_BOT_TOKEN: 'xoxb-1-2-3' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr += d));
    const [code] = await once(child, 'exit');
    expect(code).toBe(2);
    expect(stderr).toContain('SLACK_SIGNING_SECRET: is required when SLACK_BOT_TOKEN is set');
  });
});
