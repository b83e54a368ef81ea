import { promises as fsp, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { resolve } from 'node:path';
import { ConfigError, UsageError, errorMessage } from '../errors.ts';
import { reconcile, type ReconcileResult, type PassProgress } from '../reconcile/index.ts';
import type { ModelOutcome } from '../reconcile/result.ts';
import { checkRegistryLocation } from '../reconcile/registry-access.ts';
import { createLogger, logFormatFor, type Logger } from '../log.ts';
import { StoreLayout } from '../store/layout.ts';
import { printJson, type CommandContext } from './context.ts';
import { formatBytes, formatDuration } from '../reconcile/format.ts';
import type { VerifySettings } from '../trust/index.ts';
import { durationMs } from '../util/duration.ts';

export interface ReconcileCommandOptions {
  config?: string;
  site?: string;
  registry?: string;
  store?: string;
  branch?: string;
  tokenFile?: string;
  username?: string;
  concurrency?: string;
  dryRun?: boolean;
  force?: boolean;
  json?: boolean;
  verifyAllowedSigners?: string;
  verifyGpgKeys?: string;
  verifyMode?: string;
  /** From --config's verify: block (flags win). */
  verify?: VerifySettings;
}

/** The hub token: --token-file, else MODELSYNC_TOKEN_FILE, else MODELSYNC_TOKEN. Never printed. */
export function readToken(tokenFile: string | undefined, ctx: CommandContext): string | undefined {
  const file = tokenFile ?? ctx.env.MODELSYNC_TOKEN_FILE;
  if (file) {
    try {
      const token = readFileSync(resolve(ctx.cwd, file), 'utf8').trim();
      if (!token) throw new ConfigError(`token file ${file} is empty`, { file });
      return token;
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      const given = tokenFile !== undefined ? '--token-file' : 'MODELSYNC_TOKEN_FILE';
      // A file the command line names that is not there is a usage error, like --store or --repo (given-paths.ts).
      if (code === 'ENOENT') throw new UsageError(`cannot read token file ${file}: ENOENT (${given} ${file} does not exist)`, { file });
      throw new ConfigError(`cannot read token file ${file}: ${code ?? (err as Error).message}`, { file });
    }
  }
  const env = ctx.env.MODELSYNC_TOKEN?.trim();
  return env ? env : undefined;
}

/** How long `reconcile` waits for a store locked by a running pass (an agent's), saying so. */
export const RECONCILE_LOCK_WAIT_MS = 120_000;

export async function reconcileCommand(given: ReconcileCommandOptions, ctx: CommandContext): Promise<number> {
  const { opts, token, passTimeoutMs } = await withAgentConfig(given, ctx);
  if (!opts.site || !opts.registry || !opts.store) throw new UsageError('reconcile needs --site, --registry and --store (or --config <agent.yaml>)');
  const concurrency = opts.concurrency === undefined ? undefined : Number(opts.concurrency);
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64)) {
    throw new UsageError(`--concurrency must be an integer from 1 to 64 (got ${opts.concurrency})`);
  }
  checkRegistryLocation(opts.registry);
  let registry = /^[a-z][a-z0-9+.-]*:\/\//i.test(opts.registry) ? opts.registry : resolve(ctx.cwd, opts.registry);
  const username = opts.username ?? (opts.config ? undefined : ctx.env.MODELSYNC_USERNAME || undefined);
  if (username !== undefined) {
    const { registryUserProblem, withRegistryUser } = await import('../agent/config.ts');
    const problem = registryUserProblem(registry, token !== undefined);
    if (problem) throw new UsageError(`--username: ${problem}`);
    registry = withRegistryUser(registry, username);
  }
  const bar = !opts.json && process.stderr.isTTY ? progressBar() : undefined;
  // A person at a terminal gets the human output below; log lines then only add warnings and errors, readably.
  const format = logFormatFor({ json: opts.json, stderrIsTTY: Boolean(process.stderr.isTTY), env: ctx.env });
  const logger = format === 'pretty' ? createLogger({ format, level: ctx.env.MODELSYNC_LOG_LEVEL || 'warn' }) : ctx.logger;
  let progress: PassProgress | undefined;
  // Ctrl-C or SIGTERM: say what stays (verified downloads and partial files are kept in the store, the
  // lock is taken over by the next pass), then exit as the signal would (130, 143).
  const onSignal = (sig: NodeJS.Signals): void => {
    bar?.done();
    process.stderr.write(`modelsync: ${interruptedWords(sig, progress)}\n`);
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGHUP' ? 1 : 15));
  };
  for (const s of INTERRUPTS) process.once(s, onSignal);
  const result = await reconcile({
    site: opts.site,
    registry,
    store: resolve(ctx.cwd, opts.store),
    branch: opts.branch,
    token,
    force: opts.force,
    dryRun: opts.dryRun,
    concurrency,
    logger,
    onProgress: (p) => {
      progress = p;
      bar?.update(p);
    },
    ...verifySettings(opts, ctx),
    // An agent's pass holds the lock for a while: wait for it (bounded) rather than fail at once.
    lockWaitMs: opts.dryRun ? 0 : RECONCILE_LOCK_WAIT_MS,
    ...(passTimeoutMs !== undefined ? { timeoutMs: passTimeoutMs } : {}),
  }).finally(() => {
    for (const s of INTERRUPTS) process.off(s, onSignal);
  });
  bar?.done();
  if (!opts.dryRun && result.changed.length > 0) await nudgeAgent(resolve(ctx.cwd, opts.store), logger);
  // isomorphic-git fetched over the global keep-alive agents: close idle sockets so the process exits now.
  http.globalAgent.destroy();
  https.globalAgent.destroy();
  if (opts.json) printJson(ctx, result);
  else ctx.out(renderResult(result));
  return result.exitCode;
}

const INTERRUPTS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** What an interrupted `reconcile` leaves: `interrupted (SIGINT); 33 MiB of 120 MiB kept, the next pass resumes`. */
export function interruptedWords(sig: NodeJS.Signals, p: PassProgress | undefined): string {
  if (!p || p.total === 0) return `interrupted (${sig}) before any download; each model is on its old version or fully switched, and the next pass does the rest`;
  if (p.objectsDone === p.objects) return `interrupted (${sig}) after every download (${formatBytes(p.total)}); models switched so far stay, the next pass finishes the rest`;
  return `interrupted (${sig}); ${formatBytes(p.bytes)} of ${formatBytes(p.total)} kept (${p.objectsDone}/${p.objects} objects complete), the next pass resumes`;
}

/**
 * `--config agent.yaml`: the site's own settings, so an operator answering a
 * conflict types `reconcile --config /etc/modelsync/agent.yaml --force`
 * rather than retyping them. Flags win over the file; the token is the
 * agent's (token_file, MODELSYNC_TOKEN) unless --token-file is given.
 */
async function withAgentConfig(opts: ReconcileCommandOptions, ctx: CommandContext): Promise<{ opts: ReconcileCommandOptions; token: string | undefined; passTimeoutMs?: number }> {
  if (!opts.config) return { opts, token: readToken(opts.tokenFile, ctx) };
  const { loadAgentConfig, readToken: agentToken } = await import('../agent/config.ts');
  const cfg = await loadAgentConfig({
    file: opts.config,
    flags: { site: opts.site, registry: opts.registry, store: opts.store, branch: opts.branch, username: opts.username, verifyAllowedSigners: opts.verifyAllowedSigners, verifyGpgKeys: opts.verifyGpgKeys, verifyMode: opts.verifyMode },
    // Only what says who we are: the rest of the agent's environment is not this command's.
    env: {
      ...(ctx.env.MODELSYNC_USERNAME ? { MODELSYNC_USERNAME: ctx.env.MODELSYNC_USERNAME } : {}),
      ...(opts.tokenFile || ctx.env.MODELSYNC_TOKEN_FILE || ctx.env.MODELSYNC_TOKEN ? { MODELSYNC_TOKEN: 'given' } : {}),
    },
    cwd: ctx.cwd,
  });
  const merged = { ...opts, site: cfg.site, registry: cfg.registry, store: cfg.store, branch: cfg.branch, verify: cfg.verify };
  const token = opts.tokenFile || ctx.env.MODELSYNC_TOKEN_FILE ? readToken(opts.tokenFile, ctx) : await agentToken(cfg, ctx.env);
  return { opts: merged, token, passTimeoutMs: durationMs(cfg.pass_timeout) };
}

/** The site's verify settings: agent.yaml's block (--config) with the flags over it, or the flags alone. */
function verifySettings(opts: ReconcileCommandOptions, ctx: CommandContext): { verify?: VerifySettings } {
  if (opts.verify) return { verify: opts.verify };
  if (!opts.verifyAllowedSigners && !opts.verifyGpgKeys) {
    if (opts.verifyMode) throw new UsageError('--verify-mode needs --verify-allowed-signers or --verify-gpg-keys');
    return {};
  }
  const mode = opts.verifyMode ?? 'tip';
  if (mode !== 'tip' && mode !== 'every') throw new UsageError(`--verify-mode must be tip or every (got ${JSON.stringify(mode)})`);
  return {
    verify: {
      mode,
      ...(opts.verifyAllowedSigners ? { allowed_signers: resolve(ctx.cwd, opts.verifyAllowedSigners) } : {}),
      ...(opts.verifyGpgKeys ? { gpg_keys: resolve(ctx.cwd, opts.verifyGpgKeys) } : {}),
    },
  };
}

/** Tell an agent running on this store that versions were switched under it (it watches this file). */
async function nudgeAgent(store: string, logger: Logger): Promise<void> {
  const file = new StoreLayout(store).nudgeFile;
  await fsp.writeFile(file, `${new Date().toISOString()} reconcile pid ${process.pid}\n`).catch((err: unknown) => {
    logger.debug({ err: errorMessage(err), file }, 'could not nudge an agent on this store');
  });
}

const OUTCOME_WORDS: Record<string, string> = {
  unchanged: 'in sync',
  activated: 'activated',
  planned: 'would apply',
  conflict: 'CONFLICT',
  degraded: 'DEGRADED',
  failed: 'FAILED',
};

/** The agent's services (agent.yaml), so its output can name what it restarted; `reconcile` has none. */
export interface RenderContext {
  services?: ReadonlyArray<{ name: string; models: readonly string[]; restart?: unknown; reload?: unknown; health?: unknown }>;
}

export function renderResult(r: ReconcileResult, rc: RenderContext = {}): string {
  const lines: string[] = [];
  lines.push(`${r.dryRun ? 'dry run: ' : ''}site ${r.site} · ${r.registry}${r.commit ? ` @ ${r.commit.slice(0, 12)}` : ''}`);
  const rows = r.models.map((m) => {
    const change = m.outcome === 'unchanged' || m.outcome === 'conflict' || (m.from === m.desired) ? (m.from ?? '-') : `${m.from ?? '-'} → ${m.desired}`;
    if (m.owedVerdict && m.outcome === 'activated') return [m.model, change, owedWords(m.model, rc), ''];
    const what = `${OUTCOME_WORDS[m.outcome] ?? m.outcome}${m.action !== 'none' || m.reason !== 'in-sync' ? ` (${m.reason})` : ''}`;
    return [m.model, change, what, m.outcome === 'unchanged' ? '' : bytesWords(m)];
  });
  const widths = [0, 1, 2].map((i) => Math.max(0, ...rows.map((row) => row[i]!.length)));
  for (const row of rows) lines.push(`  ${row.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c)).join('  ').trimEnd()}`);
  for (const m of r.models) {
    if (m.outcome === 'conflict' || m.outcome === 'degraded' || m.drift) lines.push(`    ${m.model}: ${m.drift ?? m.detail}`);
  }
  lines.push(r.dryRun ? `plan: ${planSummary(r)}` : `status: ${r.status} (${passCounts(r, rc).join(', ')}, ${formatDuration(r.durationMs)})`);
  for (const u of r.unmanaged) {
    lines.push(`  ${u.model}: no longer selected by the site; left as is${u.active ? ` (${u.active} stays current)` : ''}, unmanaged (modelsync gc --unmanaged removes it)`);
  }
  for (const e of r.errors) lines.push(`error [${e.code}]: ${e.message}`);
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}

/**
 * The bytes column of a model the pass acted on: what crossed the network for
 * it, against the version's bytes the site lacked when that is less (a chunk
 * delta fetches far less; a rollback to a version still in the store fetches
 * nothing).
 */
function bytesWords(m: ModelOutcome): string {
  if (m.outcome === 'planned') return m.bytes > 0 ? `${formatBytes(m.bytes)} to fetch` : m.action === 'activate' ? 'nothing to fetch (in store)' : '';
  if (m.bytesFetched === undefined) return m.bytes > 0 ? `${formatBytes(m.bytes)} to fetch` : '';
  if (m.bytes === 0) return m.bytesFetched === 0 ? 'nothing fetched (in store)' : `${formatBytes(m.bytesFetched)} fetched`;
  // (A whole download also brings the file's chunk index, a little over its size: no "of" then.)
  if (m.bytesFetched >= m.bytes) return `${formatBytes(m.bytesFetched)} fetched`;
  return `${m.bytesFetched === 0 ? 'nothing' : formatBytes(m.bytesFetched)} fetched of ${formatBytes(m.bytes)}`;
}

/**
 * A model whose version an earlier pass switched (a plain `reconcile`, which
 * restarts no service): this pass only restarted and checked its services.
 * A model no service uses had nothing done to it and reads as in sync.
 */
function owedWords(model: string, rc: RenderContext): string {
  if (!rc.services) return 'services restarted and checked (switched by an earlier pass)';
  const mine = rc.services.filter((s) => s.models.includes(model));
  if (mine.length === 0) return 'in sync';
  const did = mine.map((s) => {
    const verb = s.reload ? 'reloaded' : s.restart ? 'restarted' : undefined;
    return `${s.name} ${[verb, s.health ? 'checked' : undefined].filter(Boolean).join(' and ') || 'notified'}`;
  });
  return `${did.join(', ')} (switched by an earlier pass)`;
}

/** What a pass did, in counts: a version that was switched and rolled back is not "0 changed". */
function passCounts(r: ReconcileResult, rc: RenderContext): string[] {
  const parts: string[] = [];
  const rolledBack = r.rolledBack ?? [];
  // Switches an earlier pass made, judged now: not changes of this pass.
  const owed = r.models.filter((m) => m.owedVerdict && m.outcome === 'activated');
  const changed = r.changed.filter((c) => !owed.some((m) => m.model === c.model));
  const checked = owed.filter((m) => !rc.services || rc.services.some((s) => s.models.includes(m.model)));
  // A first install that failed its health check has no previous version to go back to: installed, and it stays.
  const kept = r.degraded.filter((d) => !rolledBack.some((x) => x.model === d.model) && r.models.some((m) => m.model === d.model && m.active === d.version && m.from !== d.version));
  if (kept.length > 0) parts.push(`${kept.length} installed, unhealthy with no previous version to roll back to: ${kept.length > 1 ? 'they stay' : 'it stays'} active`);
  if (rolledBack.length === 0) {
    if (changed.length > 0 || kept.length === 0) parts.push(`${changed.length} changed`);
  }
  else {
    const switched = changed.length + rolledBack.length;
    parts.push(`${switched} switched`, rolledBack.length === switched ? 'rolled back' : `${rolledBack.length} rolled back`);
  }
  if (checked.length > 0) parts.push(`services of ${checked.length} earlier switch${checked.length > 1 ? 'es' : ''} restarted and checked`);
  parts.push(`${formatBytes(r.bytesFetched)} fetched`);
  if (r.conflicts.length) parts.push(`${r.conflicts.length} conflict${r.conflicts.length > 1 ? 's' : ''}`);
  if (r.degraded.length) parts.push(`${r.degraded.length} degraded`);
  return parts;
}

/** A dry run says what a pass would do: "in sync", or how many models it would switch and fetch. */
function planSummary(r: ReconcileResult): string {
  const parts: string[] = [];
  if (r.changed.length > 0) parts.push(`would change ${r.changed.length} model${r.changed.length > 1 ? 's' : ''} (${r.changed.map((c) => `${c.model} ${c.from ?? '-'} → ${c.to}`).join(', ')})`);
  if (r.bytesPlanned > 0) parts.push(`${formatBytes(r.bytesPlanned)} to fetch`);
  if (r.conflicts.length) parts.push(`${r.conflicts.length} conflict${r.conflicts.length > 1 ? 's' : ''}`);
  if (r.degraded.length) parts.push(`${r.degraded.length} degraded (not retried at this commit)`);
  const head = r.errors.length ? 'failed' : r.changed.length === 0 && r.conflicts.length === 0 && r.degraded.length === 0 ? 'in sync, nothing to do' : 'ok';
  return `${head}${parts.length ? ` (${parts.join(', ')}, ${formatDuration(r.durationMs)})` : ` (${formatDuration(r.durationMs)})`}`;
}

function progressBar(): { update(p: PassProgress): void; done(): void } {
  let last = 0;
  let shown = false;
  let finished = false;
  const started = Date.now();
  return {
    update(p) {
      const now = Date.now();
      const complete = p.objectsDone === p.objects;
      if (finished || (now - last < 100 && !complete)) return;
      last = now;
      shown = true;
      const frac = p.total > 0 ? Math.min(1, p.bytes / p.total) : 1;
      const width = 30;
      const fill = Math.round(frac * width);
      const rate = p.bytes / Math.max(0.001, (now - started) / 1000);
      process.stderr.write(`\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${formatBytes(p.bytes)}/${formatBytes(p.total)} ${formatBytes(rate)}/s  ${p.objectsDone}/${p.objects} objects `);
      if (complete) {
        // End the line now: the pass's summary log line follows on stderr.
        finished = true;
        process.stderr.write('\n');
      }
    },
    done() {
      if (shown && !finished) process.stderr.write('\n');
    },
  };
}
