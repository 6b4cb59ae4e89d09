import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { hasRedisServer } from '../../bench/support/redis-stats.js';
import { loopbackTls } from '../support/loopback-tls.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

declare module 'vitest' {
  export interface ProvidedContext {
    /** PEM files of the certificate the fake Entra token endpoint serves (trusted by NODE_EXTRA_CA_CERTS). */
    loginTls: { keyFile: string; certFile: string };
  }
}

/**
 * Runs once before the reliability scenarios: builds the bot (`npm run build`: the scenarios run
 * `node dist/bot/main.js`, as production does), checks that redis-server can be started, and makes the
 * certificate of the fake token endpoint (the bot refuses an http:// authority).
 */
export default async function setup(project: TestProject): Promise<() => void> {
  if (!(await hasRedisServer())) {
    throw new Error(
      'redis-server was not found on PATH: the reliability scenarios start private ones (Debian/Ubuntu: apt-get install redis-server)',
    );
  }
  execFileSync(
    process.execPath,
    [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: ROOT,
      stdio: 'inherit',
    },
  );
  const dir = mkdtempSync(join(tmpdir(), 'mdr-reliability-tls-'));
  const { keyFile, certFile } = loopbackTls(dir, 'login');
  project.provide('loginTls', { keyFile, certFile });
  return () => rmSync(dir, { recursive: true, force: true });
}
