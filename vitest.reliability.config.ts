import { defineConfig } from 'vitest/config';

/**
 * `npm run test:reliability`: bot processes (compiled, as users run them) against a private
 * redis-server and loopback fakes, crashed, restarted and stopped on purpose. One scenario at a time:
 * each uses both cores of a small machine.
 */
export default defineConfig({
  test: {
    include: ['test/reliability/**/*.test.ts'],
    environment: 'node',
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 240_000,
    hookTimeout: 60_000,
    globalSetup: ['test/reliability/global-setup.ts'],
  },
});
