import { afterEach, beforeAll } from 'vitest';
import { type BotProcess, buildIfStale, spawnBot, stopBot } from './bot-process.js';

/**
 * For a test file that runs the bot as `npm start` does: builds dist/ first (the prestart step) and,
 * after each test, ends the process group of every bot the test started. `spawn` starts one;
 * `current()` is the last one started.
 */
export function useBotProcesses(): {
  spawn(env: Record<string, string>): BotProcess;
  current(): BotProcess | undefined;
} {
  let started: BotProcess[] = [];
  beforeAll(() => buildIfStale());
  afterEach(async () => {
    const stopping = started;
    started = [];
    await Promise.all(stopping.map((bot) => stopBot(bot)));
  });
  return {
    spawn(env) {
      const bot = spawnBot(env);
      started.push(bot);
      return bot;
    },
    current: () => started.at(-1),
  };
}
