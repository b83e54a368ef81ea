import pino, { type Logger } from 'pino';
import { escapeControl } from './util/escape.ts';

export type { Logger };

/** `json`: one pino JSON object per line (daemons, journald, log shippers). `pretty`: one readable line, for a person at a terminal. */
export type LogFormat = 'json' | 'pretty';

/**
 * One logger factory for every command. Logs go to stderr so `--json` output
 * on stdout stays a single parseable document.
 */
export function createLogger(options: { level?: string; name?: string; format?: LogFormat } = {}): Logger {
  const level = options.level || process.env.MODELSYNC_LOG_LEVEL || 'info';
  const destination = options.format === 'pretty' ? { write: (line: string) => void process.stderr.write(prettyLine(line)) } : pino.destination({ fd: 2, sync: true });
  return pino(
    {
      level,
      name: options.name ?? 'modelsync',
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['token', '*.token', 'authorization', '*.authorization', 'headers.authorization', 'password', 'secret'], censor: '***' },
    },
    destination,
  );
}

/**
 * The format for a command's logs: MODELSYNC_LOG_FORMAT if set; JSON when the
 * command prints JSON or stderr is not a terminal (a daemon under systemd, a
 * pipe, a test); readable lines when a person is watching.
 */
export function logFormatFor(opts: { json?: boolean; stderrIsTTY: boolean; env: NodeJS.ProcessEnv }): LogFormat {
  const forced = opts.env.MODELSYNC_LOG_FORMAT;
  if (forced === 'json' || forced === 'pretty') return forced;
  return !opts.json && opts.stderrIsTTY ? 'pretty' : 'json';
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** A pino JSON line as `12:03:04 WARN  message key=value …` (local time; already redacted by pino). */
export function prettyLine(line: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const { time, level, msg, name: _name, ...rest } = o;
  // Local wall-clock time: this line is for a person at this machine's terminal.
  const at = typeof time === 'string' ? new Date(time) : undefined;
  const clock = at && Number.isFinite(at.getTime()) ? at.toTimeString().slice(0, 8) : '';
  const lvl = (LEVELS[Number(level)] ?? String(level)).padEnd(5);
  const fields = Object.entries(rest)
    .filter(([, v]) => v !== undefined && !(Array.isArray(v) && v.length === 0))
    .map(([k, v]) => `${escapeControl(k)}=${typeof v === 'string' && /^[^\s"=]+$/.test(v) ? escapeControl(v) : escapeControl(JSON.stringify(v) ?? String(v))}`);
  // Messages and fields carry registry and site text (a template's error, a file name): escaped.
  return `${[clock, lvl, escapeControl(String(msg ?? '')), ...fields].filter((x) => x !== '').join(' ')}\n`;
}

/** A logger that drops everything, for tests and library callers that pass none. */
export const silentLogger: Logger = pino({ level: 'silent' });
