import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../../..');
const require = createRequire(import.meta.url);
const biome = join(dirname(require.resolve('@biomejs/biome/package.json')), 'bin', 'biome');

/** The `core/**` override of the project's biome.json, alone, so only its rules can report anything. */
function coreOverride(): unknown {
  const config = JSON.parse(readFileSync(join(root, 'biome.json'), 'utf8')) as {
    overrides: { includes: string[] }[];
  };
  const override = config.overrides.find((o) => o.includes.includes('core/**'));
  if (!override) throw new Error('biome.json has no core/** override');
  return override;
}

describe('the core/ lint rule (npm run lint)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mdr-core-lint-'));
    mkdirSync(join(dir, 'core'));
    writeFileSync(
      join(dir, 'biome.json'),
      JSON.stringify({
        vcs: { enabled: false },
        formatter: { enabled: false },
        assist: { enabled: false },
        linter: { enabled: true, rules: { recommended: false } },
        overrides: [coreOverride()],
      }),
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The lines of `source`, as core/probe.ts, that the rule reports. */
  function reported(source: string): number[] {
    writeFileSync(join(dir, 'core', 'probe.ts'), source);
    const run = spawnSync(process.execPath, [biome, 'lint', '--max-diagnostics=100', '.'], {
      cwd: dir,
      encoding: 'utf8',
    });
    const out = `${run.stdout}${run.stderr}`;
    expect(out).not.toMatch(/configuration resulted in errors/);
    return [...out.matchAll(/^core\/probe\.ts:(\d+):\d+ lint\/style\/noRestricted/gm)].map((m) =>
      Number(m[1]),
    );
  }

  it('lets core import zod and its own files only', () => {
    const source = [
      "import { z } from 'zod';",
      "import { ACTION_TYPES } from './actions.js';",
      "import { readFileSync } from 'node:fs';",
      "import { Redis } from 'ioredis';",
      "import { pino } from 'pino';",
      "import { WebClient } from '@slack/web-api';",
      "import { createLogger } from '../bot/logger.js';",
      "import { z4 } from 'zod/v4';",
      'export const used = [z, ACTION_TYPES, readFileSync, Redis, pino, WebClient, createLogger, z4];',
    ].join('\n');
    expect(reported(source)).toEqual([3, 4, 5, 6, 7, 8]);
  });

  it('keeps process, console and fetch out of core', () => {
    const source = ['export const port = process.env.PORT;', "console.log('x');", "fetch('https://x');"].join(
      '\n',
    );
    expect(reported(source)).toEqual([1, 2, 3]);
  });
});
