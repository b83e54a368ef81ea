import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * One logger factory for every command. Logs go to stderr so `--json` output
 * on stdout stays a single parseable document.
 */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  const level = options.level ?? process.env.MODELSYNC_LOG_LEVEL ?? 'info';
  return pino(
    {
      level,
      name: options.name ?? 'modelsync',
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['token', '*.token', 'authorization', '*.authorization', 'headers.authorization', 'password', 'secret'], censor: '***' },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}

/** A logger that drops everything, for tests and library callers that pass none. */
export const silentLogger: Logger = pino({ level: 'silent' });
