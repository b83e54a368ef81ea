/**
 * The dashboard's content as data, apart from its HTML: which sites, which
 * models, what each cell says. Pure, so the rules (what counts as in sync,
 * degraded, in conflict) are tested without a browser.
 */
import { str, type SiteCondition } from '../site-condition.ts';
import type { SiteRecord, Transition } from '../sites-status.ts';
import type { Deploy, RolloutView } from './history.ts';

export type CellState = 'ok' | 'progressing' | 'degraded' | 'conflict' | 'pinned' | 'absent';

export interface Cell {
  declared: string;
  active: string;
  state: CellState;
  /** Why, when not ok. */
  note: string;
}

export interface SiteRow {
  site: string;
  condition: string;
  reason: string;
  receivedAt: string;
  commit: string;
  cells: Map<string, Cell>;
}

export interface DashboardView {
  generatedAt: string;
  models: string[];
  sites: SiteRow[];
  counts: Map<string, number>;
  rollouts: RolloutView[];
  timeline: TimelineEntry[];
}

export type TimelineEntry =
  | { kind: 'deploy'; at: string; deploy: Deploy }
  | { kind: 'transition'; at: string; transition: Transition };

const MAX_TIMELINE = 60;

interface ReportModel {
  model?: unknown;
  declared?: unknown;
  desired?: unknown;
  active?: unknown;
  outcome?: unknown;
  reason?: unknown;
  detail?: unknown;
  drift?: unknown;
  verdictOwed?: unknown;
  soak?: unknown;
}

function listOf(v: unknown, key: string): Array<Record<string, unknown>> {
  const pass = v && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined;
  return Array.isArray(pass) ? (pass as Array<Record<string, unknown>>).filter((x) => x && typeof x === 'object') : [];
}

export function cellFor(m: ReportModel, report: Record<string, unknown>): Cell {
  const name = str(m.model, 128);
  const declared = str(m.declared, 64);
  const active = str(m.active, 64);
  const desired = str(m.desired, 64) || declared;
  const degraded = listOf(report.lastPass, 'degraded').find((d) => d.model === name);
  if (degraded) return { declared, active, state: 'degraded', note: `${str(degraded.version, 64)} failed its health check${degraded.reason ? `: ${str(degraded.reason)}` : ''}` };
  const conflict = listOf(report.lastPass, 'conflicts').find((c) => c.model === name);
  if (conflict || m.outcome === 'conflict') return { declared, active, state: 'conflict', note: str(conflict?.detail) || str(m.detail) || 'active version is newer than declared' };
  if (m.verdictOwed) return { declared, active, state: 'progressing', note: 'health check owed' };
  if (m.soak && typeof m.soak === 'object') return { declared, active, state: 'progressing', note: `soak: ${str((m.soak as Record<string, unknown>).reason) || 'metric gate watching'}` };
  if (active !== desired) return { declared, active, state: 'progressing', note: `on its way to ${desired}` };
  if (m.drift) return { declared, active, state: 'pinned', note: str(m.drift) };
  return { declared, active, state: 'ok', note: desired !== declared ? `site override ${desired}` : '' };
}

export function buildView(input: {
  records: readonly SiteRecord[];
  conditions: ReadonlyMap<string, SiteCondition>;
  transitions: readonly Transition[];
  deploys: readonly Deploy[];
  rollouts: readonly RolloutView[];
  now: number;
}): DashboardView {
  const models = new Set<string>();
  const counts = new Map<string, number>();
  const sites: SiteRow[] = [];
  for (const rec of [...input.records].sort((a, b) => a.site.localeCompare(b.site))) {
    const c = input.conditions.get(rec.site) ?? { condition: 'Unknown', reason: '' };
    counts.set(c.condition, (counts.get(c.condition) ?? 0) + 1);
    const cells = new Map<string, Cell>();
    const list = Array.isArray(rec.report.models) ? (rec.report.models as ReportModel[]) : [];
    for (const m of list.slice(0, 200)) {
      if (!m || typeof m !== 'object') continue;
      const name = str(m.model, 128);
      if (!name) continue;
      models.add(name);
      cells.set(name, cellFor(m, rec.report));
    }
    sites.push({ site: rec.site, condition: c.condition, reason: c.reason, receivedAt: rec.receivedAt, commit: str(rec.report.commit, 40), cells });
  }
  const timeline: TimelineEntry[] = [
    ...input.deploys.map((d) => ({ kind: 'deploy' as const, at: d.at, deploy: d })),
    ...input.transitions.map((t) => ({ kind: 'transition' as const, at: t.at, transition: t })),
  ].sort((a, b) => Date.parse(b.at) - Date.parse(a.at)).slice(0, MAX_TIMELINE);
  return { generatedAt: new Date(input.now).toISOString(), models: [...models].sort(), sites, counts, rollouts: [...input.rollouts], timeline };
}
