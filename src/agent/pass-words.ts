/** How a pass's outcome reads to an operator (/status messages, the DEGRADED log line). */
import type { ReconcileResult } from '../reconcile/index.ts';
import { passError } from '../reconcile/result.ts';
import { redactUrl } from '../util/redact.ts';
import type { AgentConfig } from './config.ts';


/**
 * What the site runs against what the commit declares, in one line: "applied
 * X" only when it runs all of it; otherwise "attempted X; running previous Y
 * for M (degraded)", so a rolled-back version never reads as applied.
 */
export function readyMessage(result: Pick<ReconcileResult, 'commit' | 'models' | 'degraded' | 'conflicts'>): string {
  if (!result.commit) return '';
  const commit = result.commit.slice(0, 12);
  const notes: string[] = [];
  for (const d of result.degraded) {
    const active = result.models.find((m) => m.model === d.model)?.active;
    notes.push(active && active !== d.version
      ? `running previous ${active} for ${d.model} (degraded: ${d.version} failed its health check)`
      : `running ${d.version} for ${d.model} although it failed its health check (degraded; nothing to go back to)`);
  }
  for (const c of result.conflicts) notes.push(`left ${c.model} at ${c.active ?? '-'}, newer than the declared ${c.declared} (conflict)`);
  return notes.length === 0 ? `applied ${commit}` : `attempted ${commit}; ${notes.join('; ')}`;
}

/**
 * What happened to the versions that failed their health check: rolled back
 * to the previous one, or (a first install) left active because there is no
 * previous version to go back to.
 */
export function degradedWords(result: Pick<ReconcileResult, 'degraded' | 'models'>): string {
  const back: string[] = [];
  const stays: string[] = [];
  for (const d of result.degraded) {
    const active = result.models.find((m) => m.model === d.model)?.active;
    if (active === d.version) stays.push(`${d.model} ${d.version}`);
    else back.push(`${d.model} ${d.version}${active ? ` (back to ${active})` : ''}`);
  }
  const parts: string[] = [];
  if (back.length) parts.push(`${back.join(', ')} failed ${back.length > 1 ? 'their health checks and were' : 'its health check and was'} rolled back`);
  if (stays.length) parts.push(`${stays.join(', ')} failed ${stays.length > 1 ? 'their health checks' : 'its health check'} with no previous version to roll back to; ${stays.length > 1 ? 'they stay' : 'it stays'} active`);
  return parts.join('; ');
}

export function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** A pass that threw instead of returning a result (a bug, or the store vanished): reported like any failed pass. */
export function failedResult(cfg: AgentConfig, err: unknown, startedAt: number): ReconcileResult {
  const e = passError(err);
  return {
    status: 'failed',
    exitCode: 1,
    dryRun: false,
    site: cfg.site,
    registry: /^https?:\/\//i.test(cfg.registry) ? redactUrl(cfg.registry) : cfg.registry,
    models: [],
    changed: [],
    rolledBack: [],
    conflicts: [],
    degraded: [],
    unmanaged: [],
    bytesFetched: 0,
    bytesPlanned: 0,
    durationMs: 0,
    stepMs: {},
    errors: [e],
    warnings: [],
    startedAt: new Date(startedAt).toISOString(),
  };
}
