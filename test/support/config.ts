import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { ConfigError, loadConfig } from '../../bot/config.js';

/** A policy.yaml written in a temporary folder of its own; `remove` deletes the folder. */
export interface PolicyFile {
  path: string;
  remove(): void;
}

/** Writes `text` as policy.yaml in a new temporary folder. */
export function writePolicyFile(text: string): PolicyFile {
  const dir = mkdtempSync(join(tmpdir(), 'mdr-policy-'));
  const path = join(dir, 'policy.yaml');
  writeFileSync(path, text);
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The problems `loadConfig` refuses `env` with (it must refuse it with a ConfigError). */
export function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected the configuration to be refused');
}
