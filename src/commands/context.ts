import { createLogger, type Logger } from '../log.ts';
import { escapeControlKeepLines } from '../util/escape.ts';

/**
 * What a command gets from the outside world. The CLI passes the real
 * process; tests pass buffers and a temp cwd.
 */
export interface CommandContext {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Human output (or the one JSON document with --json). */
  out(text: string): void;
  logger: Logger;
  /** Whether stdout is a terminal (progress bars, colours). */
  tty: boolean;
}

export function processContext(): CommandContext {
  return {
    cwd: process.cwd(),
    env: process.env,
    // The last line of defence: each command escapes what came from a site or a registry where it
    // prints it (so tables stay aligned); no human output needs a control character but tab and newline.
    out: (text) => process.stdout.write(escapeControlKeepLines(text.endsWith('\n') ? text : `${text}\n`)),
    logger: createLogger(),
    tty: Boolean(process.stdout.isTTY),
  };
}

/** Exit codes of DESIGN.md's command line. */
export { EXIT } from '../errors.ts';

export function printJson(ctx: CommandContext, value: unknown): void {
  ctx.out(JSON.stringify(value, null, 2));
}
