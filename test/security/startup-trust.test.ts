import { networkInterfaces } from 'node:os';
import { describe, expect, it } from 'vitest';
import { freePort } from '../support/redis-server.js';
import { useBotProcesses } from '../support/use-bot-processes.js';

const bots = useBotProcesses();

/** The bot as `npm start` runs it, with only `env` (no HOST); resolves once it printed `until`. */
async function startBot(env: Record<string, string>, until: RegExp) {
  const port = await freePort();
  const started = bots.spawn({ PORT: String(port), ...env });
  await new Promise<void>((resolve, reject) => {
    const check = () => {
      if (until.test(started.output())) resolve();
    };
    started.child.stdout?.on('data', check);
    started.child.stderr?.on('data', check);
    started.child.once('exit', (code) => reject(new Error(`the bot exited (${code}):\n${started.output()}`)));
  });
  return { port, output: started.output };
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
