/**
 * One word for a site, as the dashboard, /metrics, notifications, `status
 * --hub` and `wait` show it, derived from the site's last report and how old
 * that report is. Agents say their own health; the hub adds what only it can
 * see: a site that stopped reporting (Stale) or whose agent stopped (Stopped).
 * A condition this hub does not know yet (a newer agent's, "Stalled
 * (untrusted)") passes through as the agent spelled it, so new ones never
 * break the page or the metrics.
 */
import { nextCronRun } from '../util/cron-next.ts';

/** The conditions the dashboard colours; others are shown neutrally. */
export const KNOWN_CONDITIONS = ['Ready', 'Progressing', 'Degraded', 'Conflict', 'Waiting', 'Stale', 'Stopped', 'Failed', 'Stalled'] as const;

export interface SiteCondition {
  condition: string;
  /** Why, in a line (empty when Ready). */
  reason: string;
}

/** A report's own fields the hub reads; everything else is the agent's business. */
interface ReportView {
  health?: unknown;
  phase?: unknown;
  conditions?: unknown;
  lastError?: unknown;
  schedule?: unknown;
  staleAfterSeconds?: unknown;
  lastPass?: unknown;
}

/** An agent-supplied condition word: "Ready", "Stalled (untrusted)"; anything else is "Unknown". */
const CONDITION_RE = /^[A-Z][A-Za-z]{0,31}(?: \([a-z][a-z -]{0,31}\))?$/;
const DEFAULT_PERIOD_S = 900;

export function str(v: unknown, max = 300): string {
  return typeof v === 'string' ? v.slice(0, max) : '';
}

/** Seconds between two runs of the site's reported schedule (15 min when unknown or unparsable). */
export function schedulePeriodSeconds(report: ReportView, now: number): number {
  const expr = str(report.schedule, 100);
  if (!expr) return DEFAULT_PERIOD_S;
  // Every report of every site asks; a fleet shares a handful of schedules.
  const hit = periodCache.get(expr);
  if (hit && now - hit.at < PERIOD_CACHE_MS && now >= hit.at) return hit.period;
  const period = computePeriod(expr, now);
  if (periodCache.size >= PERIOD_CACHE_SIZE) periodCache.delete(periodCache.keys().next().value!);
  periodCache.set(expr, { period, at: now });
  return period;
}

const periodCache = new Map<string, { period: number; at: number }>();
const PERIOD_CACHE_SIZE = 256;
const PERIOD_CACHE_MS = 3_600_000;

function computePeriod(expr: string, now: number): number {
  try {
    const a = nextCronRun(expr, now);
    const b = a === null ? null : nextCronRun(expr, a);
    return a !== null && b !== null ? Math.max(60, (b - a) / 1000) : DEFAULT_PERIOD_S;
  } catch {
    return DEFAULT_PERIOD_S;
  }
}

/**
 * How long without a report before the hub calls a site Stale: `factor`
 * schedule periods, and never less than what the agent itself allows between
 * registry contacts (it reports at least once per pass).
 */
export function staleAfterMs(report: ReportView, now: number, factor: number): number {
  const own = typeof report.staleAfterSeconds === 'number' && Number.isFinite(report.staleAfterSeconds) ? report.staleAfterSeconds : 0;
  return Math.max(factor * schedulePeriodSeconds(report, now), own) * 1000;
}

function conditionMessage(report: ReportView, type: string): string {
  if (!Array.isArray(report.conditions)) return '';
  for (const c of report.conditions as Array<Record<string, unknown>>) {
    if (c && typeof c === 'object' && c.type === type && c.status === true) return [str(c.reason, 80), str(c.message)].filter(Boolean).join(': ');
  }
  return '';
}

export function siteCondition(report: ReportView, receivedAtMs: number, now: number, staleFactor = 3): SiteCondition {
  if (report.phase === 'stopped') return { condition: 'Stopped', reason: `the agent stopped${Number.isFinite(receivedAtMs) ? ` at ${new Date(receivedAtMs).toISOString()}` : ''}` };
  const limit = staleAfterMs(report, now, staleFactor);
  if (Number.isFinite(receivedAtMs) && now - receivedAtMs > limit) {
    return { condition: 'Stale', reason: `no report for ${Math.round((now - receivedAtMs) / 60_000)} min (expected at least every ${Math.round(limit / 60_000)} min)` };
  }
  const health = str(report.health, 64);
  const condition = CONDITION_RE.test(health) ? health : 'Unknown';
  if (condition === 'Ready') return { condition, reason: '' };
  const own = conditionMessage(report, condition.split(' ')[0]!);
  const lastError = str(report.lastError);
  const reason = own || conditionMessage(report, 'Degraded') || lastError || (condition === 'Unknown' ? `the report's health is ${JSON.stringify(str(report.health, 40))}` : '');
  return { condition, reason };
}
