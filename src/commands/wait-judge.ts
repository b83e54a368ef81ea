/**
 * `wait`'s rule, pure: given the fleet as the hub reports it, where is
 * `<model> <version>`? A site is Ready on it when it runs that version with
 * its health verdict in and the hub does not see it Stale, Stopped or mid-pass;
 * Degraded when that version failed its health check there.
 */
import type { FleetSite } from '../agent/fleet.ts';

export interface WaitJudgement {
  ready: string[];
  progressing: Array<{ site: string; why: string }>;
  degraded: Array<{ site: string; why: string }>;
  /** Sites named by the selector that have not reported (or do not carry the model). */
  missing: string[];
  /**
   * Sites that know the registry declares the version but are told to run another (a site
   * override, a pin): they will never run it, so wait does not wait on them unless named.
   */
  held: Array<{ site: string; why: string }>;
}

/** `beta,edge-*`: names and `*` globs; empty or `*` selects every site that carries the model. */
export function parseSelector(sel: string | undefined): (site: string) => boolean {
  const parts = (sel ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) return () => true;
  const res = parts.map((p) => new RegExp(`^${p.split('*').map((x) => x.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`));
  return (site) => res.some((r) => r.test(site));
}

/** Plain names in a selector: sites that must report before wait can succeed. */
export function namedSites(sel: string | undefined): string[] {
  return (sel ?? '').split(',').map((s) => s.trim()).filter((s) => s && !s.includes('*'));
}

function degradedOn(s: FleetSite, model: string, version: string): string | null {
  const d = (s.lastPass?.degraded ?? []).find((x) => x.model === model && x.version === version) as { reason?: string } | undefined;
  if (d) return `${version} failed its health check${d.reason ? `: ${String(d.reason).slice(0, 200)}` : ''}`;
  const conds = Array.isArray(s.conditions) ? (s.conditions as Array<{ type?: string; status?: boolean; message?: string }>) : [];
  const c = conds.find((x) => x.type === 'Degraded' && x.status === true && typeof x.message === 'string' && x.message.includes(`${model} ${version}`));
  return c ? String(c.message).slice(0, 200) : null;
}

export function judgeWait(sites: readonly FleetSite[], model: string, version: string, selector: string | undefined): WaitJudgement {
  const selected = parseSelector(selector);
  const out: WaitJudgement = { ready: [], progressing: [], degraded: [], missing: [], held: [] };
  const seen = new Set<string>();
  const named = new Set(namedSites(selector));
  for (const s of sites) {
    if (!selected(s.site)) continue;
    const m = (s.models ?? []).find((x) => x.model === model);
    if (!m) continue;
    seen.add(s.site);
    // Declared here but told otherwise (override, pin): a site that has not yet seen the new
    // commit still declares the old version, so it is waited on, as it should be.
    if (m.declared === version && m.desired !== undefined && m.desired !== version && m.active !== version && !named.has(s.site)) {
      out.held.push({ site: s.site, why: `told to run ${m.desired} (override or pin)` });
      continue;
    }
    const bad = degradedOn(s, model, version);
    const condition = typeof s.condition === 'string' ? s.condition : String(s.health ?? 'Unknown');
    if (bad) out.degraded.push({ site: s.site, why: bad });
    else if (m.active !== version) out.progressing.push({ site: s.site, why: `runs ${m.active ?? 'nothing'}${m.declared && m.declared !== version ? ` (declares ${m.declared})` : ''}` });
    else if (m.verdictOwed) out.progressing.push({ site: s.site, why: 'health check owed' });
    else if (m.soak) out.progressing.push({ site: s.site, why: `soak: ${String(m.soak.reason ?? 'metric gate watching').slice(0, 120)}` });
    else if (['Stale', 'Stopped', 'Progressing', 'Unknown'].includes(condition.split(' ')[0]!)) out.progressing.push({ site: s.site, why: condition });
    else out.ready.push(s.site);
  }
  for (const n of namedSites(selector)) if (!seen.has(n)) out.missing.push(n);
  return out;
}

export function progressLine(model: string, version: string, j: WaitJudgement, elapsedMs: number): string {
  const total = j.ready.length + j.progressing.length + j.degraded.length + j.missing.length;
  const parts = [`${model} ${version}: ${j.ready.length}/${total} Ready`];
  if (j.progressing.length) parts.push(`waiting on ${j.progressing.slice(0, 3).map((p) => `${p.site} (${p.why})`).join(', ')}${j.progressing.length > 3 ? ` +${j.progressing.length - 3}` : ''}`);
  if (j.missing.length) parts.push(`no report yet: ${j.missing.slice(0, 3).join(', ')}${j.missing.length > 3 ? ` +${j.missing.length - 3}` : ''}`);
  if (j.degraded.length) parts.push(`DEGRADED: ${j.degraded.map((d) => d.site).join(', ')}`);
  if (j.held.length) parts.push(`not waiting on ${j.held.slice(0, 3).map((h) => `${h.site} (${h.why})`).join(', ')}${j.held.length > 3 ? ` +${j.held.length - 3}` : ''}`);
  parts.push(`${Math.round(elapsedMs / 1000)} s`);
  return parts.join(' · ');
}
