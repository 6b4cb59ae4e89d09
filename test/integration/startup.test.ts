import { describe, expect, it, vi } from 'vitest';
import { stopBot } from '../support/bot-process.js';
import { freePort } from '../support/redis-server.js';
import { useBotProcesses } from '../support/use-bot-processes.js';

const bots = useBotProcesses();

/** The first answer of `url`, once the bot listens (retried until `deadlineMs`). */
function waitForHealth(url: string, deadlineMs: number): Promise<Response> {
  return vi.waitFor(() => fetch(url), { timeout: deadlineMs, interval: 200 });
}

/** The bot as `npm start` runs it, on a free loopback port with only `env` set. */
async function startOnFreePort(env: Record<string, string> = {}) {
  const port = await freePort();
  const bot = bots.spawn({ PORT: String(port), HOST: '127.0.0.1', ...env });
  const health = await waitForHealth(`http://127.0.0.1:${port}/healthz`, 25_000);
  return { base: `http://127.0.0.1:${port}`, port, health, output: bot.output };
}

describe('npm start', () => {
  it('starts with an empty environment and answers /healthz', async () => {
    const { health, port, output } = await startOnFreePort();
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    expect(output()).toContain('NOT durable');
    // The address is logged once the server listens, which may be a moment after the first answer.
    await vi.waitFor(() => expect(output()).toContain(`local mode: open http://localhost:${port}/`), {
      timeout: 10_000,
    });
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
    const bot = bots.spawn({ SLACK_BOT_TOKEN: 'xoxb-1-2-3' });
    expect(await bot.exited).toBe(2);
    expect(bot.output()).toContain('SLACK_SIGNING_SECRET: is required when SLACK_BOT_TOKEN is set');
  });

  it('ends when its process group is told to stop, leaving no process behind', async () => {
    const started = await startOnFreePort();
    expect(started.health.status).toBe(200);
    const bot = bots.current();
    const pid = bot?.child.pid ?? 0;
    await stopBot(bot);
    expect(bot?.child.exitCode ?? bot?.child.signalCode).not.toBeNull();
    expect(() => process.kill(-pid, 0)).toThrow(/ESRCH/);
  });
});
