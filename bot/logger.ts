import { pino } from 'pino';

/** The process logger. Secrets never reach it: credentials and tokens are redacted by path. */
export function createLogger(level: string, destination?: pino.DestinationStream): pino.Logger {
  return pino(
    {
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
    },
    destination,
  );
}

export type Logger = pino.Logger;
