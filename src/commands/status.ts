import { UsageError } from '../errors.ts';
import { formatAge, formatDuration } from '../reconcile/format.ts';
import { storeStatus, type StoreStatus } from '../reconcile/status.ts';
import { escapeControl } from '../util/escape.ts';
import { printJson, EXIT, type CommandContext } from './context.ts';
import { hubBaseUrl, requireStore } from './given-paths.ts';

export interface StatusCommandOptions {
  hub?: string;
  store?: string;
  tokenFile?: string;
  json?: boolean;
  /** With --hub: keep following the fleet until Ctrl-C. */
  watch?: boolean;
}

export async function statusCommand(opts: StatusCommandOptions, ctx: CommandContext): Promise<number> {
  if (opts.hub && opts.store) throw new UsageError('give --hub or --store, not both');
  if (opts.hub) return (await import('./status-hub.ts')).hubStatusCommand({ ...opts, hub: hubBaseUrl(opts.hub) }, ctx);
  if (!opts.store) throw new UsageError('give --store <dir> (a site store) or --hub <url>');
  if (opts.watch) throw new UsageError('--watch follows a hub: give --hub <url>');
  const status = await storeStatus(requireStore(ctx, opts.store));
  if (opts.json) printJson(ctx, status);
  else ctx.out(renderStatus(status));
  return storeExitCode(status);
}

/** 4 when a model is degraded, 3 on a conflict, else 0: scripts can gate on `status`. */
export function storeExitCode(s: StoreStatus): number {
  if (s.models.some((m) => m.degraded)) return EXIT.degraded;
  if (s.models.some((m) => m.conflict)) return EXIT.conflicts;
  return EXIT.ok;
}

export function renderStatus(s: StoreStatus): string {
  const lines: string[] = [];
  lines.push(`store ${s.store}${s.site ? ` · site ${s.site}` : ''}${s.registry ? ` · ${s.registry}${s.branch ? ` (${s.branch})` : ''}` : ''}`);
  lines.push(`applied commit: ${s.appliedCommit?.slice(0, 12) ?? 'none'}${s.attemptedCommit && s.attemptedCommit !== s.appliedCommit ? ` (last attempted ${s.attemptedCommit.slice(0, 12)})` : ''}`);
  for (const m of s.models) {
    if (!m.degraded) continue;
    const at = s.attemptedCommit ? `attempted ${s.attemptedCommit.slice(0, 12)}; ` : '';
    lines.push(m.active && m.active !== m.degraded.version
      ? `${at}running previous ${m.active} for ${m.model} (degraded: ${m.degraded.version} failed its health check)`
      : `${at}running ${m.degraded.version} for ${m.model} although it failed its health check (degraded; nothing to go back to)`);
  }
  if (s.lastPass) {
    const errs = s.lastPass.errors.length ? `; ${s.lastPass.errors[0]!.code}: ${s.lastPass.errors[0]!.message.split('\n')[0]}` : '';
    lines.push(`last pass: ${s.lastPass.status} at ${s.lastPass.at} (${formatDuration(s.lastPass.durationMs)})${errs}`);
    const untrusted = s.lastPass.errors.find((e) => e.code === 'UntrustedCommit');
    if (untrusted) lines.push(`Stalled (untrusted): nothing of commit ${s.attemptedCommit?.slice(0, 12) ?? '?'} is applied until a commit signed by a trusted key lands`);
  } else {
    lines.push('last pass: none yet');
  }
  lines.push(`registry last reached: ${s.lastFetchAt ?? 'never'}${s.staleSeconds !== null ? ` (${formatAge(s.staleSeconds)} ago)` : ''}`);
  if (s.locked) lines.push(`lock: held by pid ${s.locked.pid} (${s.locked.purpose}) since ${s.locked.since}${s.locked.alive ? '' : ' — stale, the next pass takes it over'}`);
  const header = ['model', 'declared', 'active', 'previous', 'notes'];
  const rows = s.models.map((m) => {
    const notes: string[] = [];
    if (m.pinned) notes.push(`pinned ${m.pinned}`);
    if (m.desired && m.declared && m.desired !== m.declared && !m.pinned) notes.push(`override ${m.desired}`);
    if (m.conflict) notes.push(`CONFLICT: active ${m.conflict.active} newer than declared ${m.conflict.declared}`);
    if (m.degraded) notes.push(`DEGRADED: ${m.degraded.version} failed its health check`);
    // Short: a site run by `reconcile` alone shows it on every model it switched.
    if (m.verifying?.by === 'reconcile') notes.push(`services not restarted (${m.verifying.version} activated by reconcile; an agent restarts and checks them once)`);
    else if (m.verifying) notes.push(`health check owed: ${m.verifying.version} was switched by a pass that stopped before judging it; the agent's next pass checks it`);
    if (m.drift) notes.push(`drift: ${m.drift}`);
    if (m.unmanaged) notes.push(`unmanaged: the site no longer selects it${m.unmanaged.since ? ` (since ${m.unmanaged.since})` : ''}; kept as is, \`gc --unmanaged\` removes it${m.pinned ? ' (a pin has no effect on it)' : ''}`);
    else if (m.active === undefined) notes.push('not active');
    return [m.model, m.declared ?? '-', m.active ?? '-', m.previous ?? '-', notes.join('; ')].map(escapeControl);
  });
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  for (const r of all) lines.push(`  ${r.map((c, i) => (i < 4 ? c.padEnd(widths[i]!) : c)).join('  ').trimEnd()}`);
  for (const w of s.warnings) lines.push(`warning: ${w}`);
  // State and registry text (a recorded error, a site name) is escaped, line by line.
  return lines.map(escapeControl).join('\n');
}
