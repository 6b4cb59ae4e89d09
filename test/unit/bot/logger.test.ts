import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, prettyLogs } from '../../../bot/logger.js';

describe('prettyLogs', () => {
  it('is on for a terminal outside CI, off for a pipe or a file and in CI', () => {
    expect(prettyLogs({ isTTY: true }, {})).toBe(true);
    expect(prettyLogs({ isTTY: true }, { CI: 'false' })).toBe(true);
    expect(prettyLogs({ isTTY: true }, { CI: '' })).toBe(true);
    expect(prettyLogs({ isTTY: undefined }, {})).toBe(false);
    expect(prettyLogs({ isTTY: false }, {})).toBe(false);
    expect(prettyLogs({ isTTY: true }, { CI: 'true' })).toBe(false);
    expect(prettyLogs({ isTTY: true }, { CI: '1' })).toBe(false);
  });
});

describe('createLogger', () => {
  it('writes JSON lines to a given destination, tokens redacted', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    createLogger('info', destination).info({ slack: { botToken: 'xoxb-secret' } }, 'hello');
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({
      msg: 'hello',
      service: 'mdr-bot',
      slack: { botToken: '[redacted]' },
    });
  });
});
