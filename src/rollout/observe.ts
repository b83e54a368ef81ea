/**
 * Where the controller learns how sites are doing: any source of the
 * agents' status reports (the hub's in-memory fleet inside `serve`, the
 * hub's GET /api/v1/sites from elsewhere). Reports are untrusted JSON: only
 * the fields the decision uses are read, each checked for its type.
 */
import type { ModelReport, SiteReport } from './decide.ts';

export interface StatusSource {
  /** Every site's last report, as GET /api/v1/sites lists them. */
  sites(): Promise<ReadonlyArray<Record<string, unknown>>>;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export function parseReport(raw: Record<string, unknown>): SiteReport | null {
  const site = str(raw.site);
  if (!site) return null;
  const models: ModelReport[] = [];
  for (const m of Array.isArray(raw.models) ? raw.models : []) {
    if (!m || typeof m !== 'object') continue;
    const o = m as Record<string, unknown>;
    const model = str(o.model);
    if (!model) continue;
    const owed = o.verdictOwed;
    const soak = o.soak;
    models.push({ model, active: str(o.active), desired: str(o.desired), outcome: str(o.outcome), verdictOwed: owed !== undefined && owed !== null, soaking: soak !== undefined && soak !== null });
  }
  const degraded: SiteReport['degraded'] = [];
  const last = raw.lastPass;
  const list = last && typeof last === 'object' ? (last as Record<string, unknown>).degraded : undefined;
  for (const d of Array.isArray(list) ? list : []) {
    const o = (d ?? {}) as Record<string, unknown>;
    const model = str(o.model);
    const version = str(o.version);
    if (model && version) degraded.push({ model, version });
  }
  return { site, models, degraded };
}

export async function observeReports(source: StatusSource): Promise<Map<string, SiteReport>> {
  const out = new Map<string, SiteReport>();
  for (const raw of await source.sites()) {
    const r = raw && typeof raw === 'object' ? parseReport(raw) : null;
    if (r) out.set(r.site, r);
  }
  return out;
}
