/**
 * `modelsync wait <model> <version> --hub URL [--sites sel] [--timeout 10m]`:
 * a CI gate. Polls the hub's fleet view until every selected site is Ready
 * on the version (exit 0), any is Degraded on it (4), or time runs out (5).
 * One progress line on stderr (rewritten in place on a terminal, printed on
 * change otherwise); the verdict on stdout.
 */
import { fetchFleet } from '../agent/fleet.ts';
import { UsageError } from '../errors.ts';
import { parseDuration } from '../util/duration.ts';
import { redactUrl } from '../util/redact.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';
import { readToken } from './reconcile.ts';
import { judgeWait, progressLine, type WaitJudgement } from './wait-judge.ts';

export const EXIT_TIMEOUT = 5;

export interface WaitOptions {
  model?: string;
  version?: string;
  hub?: string;
  sites?: string;
  timeout?: string;
  interval?: string;
  tokenFile?: string;
  json?: boolean;
}

/** A flag's duration (`90s`, `10m`, `1h`, a bare number of seconds), or a usage error naming the flag. */
function flagDuration(text: string, what: string): number {
  const ms = parseDuration(text);
  if (ms === null) throw new UsageError(`${what} must be a duration like 90s, 10m or 1h, got ${JSON.stringify(text)}`);
  return ms;
}

export async function waitCommand(opts: WaitOptions, ctx: CommandContext, deps: { progress?: (line: string, final: boolean) => void; now?: () => number } = {}): Promise<number> {
  if (!opts.model || !opts.version) throw new UsageError('usage: modelsync wait <model> <version> --hub <url> [--sites sel] [--timeout 10m]');
  if (!opts.hub) throw new UsageError('wait needs --hub <url>');
  const timeoutMs = flagDuration(opts.timeout ?? '10m', '--timeout');
  const intervalMs = Math.max(100, flagDuration(opts.interval ?? '1s', '--interval'));
  const token = readToken(opts.tokenFile, ctx);
  const now = deps.now ?? Date.now;
  const progress = deps.progress ?? stderrProgress();
  const started = now();
  let last: WaitJudgement | null = null;
  let lastError = '';
  for (;;) {
    try {
      const j = judgeWait(await fetchFleet(opts.hub, token), opts.model, opts.version, opts.sites);
      last = j;
      lastError = '';
      const done = j.degraded.length > 0 || (j.progressing.length === 0 && j.missing.length === 0 && j.ready.length > 0);
      progress(progressLine(opts.model, opts.version, j, now() - started), done);
      if (j.degraded.length > 0) return verdict(ctx, opts, j, EXIT.degraded, `DEGRADED: ${j.degraded.map((d) => `${d.site}: ${d.why}`).join('; ')}`);
      if (done) return verdict(ctx, opts, j, EXIT.ok, `${opts.model} ${opts.version} is Ready on ${j.ready.length} site${j.ready.length === 1 ? '' : 's'}: ${j.ready.join(', ')}`);
    } catch (err) {
      // The hub restarting under a CI job is no verdict: keep trying until the timeout.
      lastError = (err as Error).message;
      progress(`${opts.model} ${opts.version}: ${lastError} (retrying)`, false);
    }
    const left = timeoutMs - (now() - started);
    if (left <= 0) {
      const why = last === null ? lastError : last.ready.length + last.progressing.length + last.missing.length === 0 ? `no site reports ${opts.model}` : progressLine(opts.model, opts.version, last, now() - started);
      return verdict(ctx, opts, last, EXIT_TIMEOUT, `timed out after ${Math.round(timeoutMs / 1000)} s waiting at ${redactUrl(opts.hub)}: ${why}`);
    }
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, left)));
  }
}

function verdict(ctx: CommandContext, opts: WaitOptions, j: WaitJudgement | null, code: number, line: string): number {
  if (opts.json) printJson(ctx, { model: opts.model, version: opts.version, exitCode: code, ...(j ?? {}), message: line });
  else ctx.out(line);
  return code;
}

function stderrProgress(): (line: string, final: boolean) => void {
  const tty = Boolean(process.stderr.isTTY);
  let prev = '';
  return (line, final) => {
    if (tty) {
      const cols = process.stderr.columns || 100;
      process.stderr.write(`\r\x1b[K${line.slice(0, cols - 1)}${final ? '\n' : ''}`);
      return;
    }
    // Seconds tick on every poll; a log gets a line only when something else changed.
    const key = line.replace(/ \u00b7 \d+ s$/, '');
    if (key !== prev) process.stderr.write(`${line}\n`);
    prev = key;
  };
}
