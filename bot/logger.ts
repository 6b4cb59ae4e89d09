import { pino } from 'pino';

/**
 * Whether logs are for a person: stdout is a terminal and this is not a CI run (`CI` set to anything
 * but `false` or `0`). Otherwise they are JSON lines, for a log collector.
 */
export function prettyLogs(
  stdout: { isTTY?: boolean } = process.stdout,
  env: Record<string, string | undefined> = process.env,
): boolean {
  const ci = env.CI !== undefined && env.CI !== '' && env.CI !== 'false' && env.CI !== '0';
  return stdout.isTTY === true && !ci;
}

/**
 * The process logger. Secrets never reach it: credentials and tokens are redacted by path. Without a
 * `destination` it writes JSON lines to stdout, or, when `prettyLogs()`, readable coloured lines through
 * pino-pretty (in pino's worker thread, so the bot's own thread does no formatting).
 */
export function createLogger(level: string, destination?: pino.DestinationStream): pino.Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'mdr-bot' },
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers["x-slack-signature"]',
        'headers.authorization',
        'authorization',
        '*.token',
        '*.secret',
        '*.password',
        '*.clientSecret',
        '*.botToken',
        '*.signingSecret',
        '*.appToken',
      ],
      censor: '[redacted]',
    },
  };
  if (destination === undefined && level !== 'silent' && prettyLogs()) {
    return pino({
      ...options,
      transport: {
        target: 'pino-pretty',
        options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' },
      },
    });
  }
  return pino(options, destination);
}

export type Logger = pino.Logger;
