import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { runModuleScript } from '../../support/bot-process.js';
import { send } from '../../support/bot-server.js';
import { loadedModulesProbe } from '../../support/modules-loaded.js';

const BOT_FRAMEWORK = /node_modules\/(botbuilder|botframework-connector)\//;
const AZURE_IDENTITY = /node_modules\/@azure\/identity\//;
const RATE_LIMITER = /node_modules\/rate-limiter-flexible\//;
const { modulesLoaded, cleanUp } = loadedModulesProbe();

afterEach(cleanUp);

const DEFENDER = {
  DEFENDER_TENANT_ID: '11111111-2222-4333-8444-555555555555',
  DEFENDER_CLIENT_ID: '66666666-7777-4888-8999-000000000000',
  DEFENDER_CLIENT_SECRET: 'not-a-real-secret-0123456789',
};

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

  it('the Teams wiring and its card publisher load no Bot Framework until an activity comes', async () => {
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const script = `import { createRequire } from 'node:module';
await import(${JSON.stringify(`${root}bot/teams/index.ts`)});
await import(${JSON.stringify(`${root}bot/teams/publisher.ts`)});
const { cache } = createRequire(import.meta.url);
const botFramework = () => Object.keys(cache).filter((m) => ${BOT_FRAMEWORK}.test(m));
const before = botFramework();
await import(${JSON.stringify(`${root}bot/teams/adapter.ts`)});
process.stdout.write(JSON.stringify({ before, withTheEndpoint: botFramework().length }));`;
    const { code, output } = await runModuleScript(script);
    expect(code, output).toBe(0);
    const { before, withTheEndpoint } = JSON.parse(output) as { before: string[]; withTheEndpoint: number };
    expect(before).toEqual([]);
    // The endpoint's module (loaded by the first activity) does load it: the probe sees it.
    expect(withTheEndpoint).toBeGreaterThan(0);
  });
});
