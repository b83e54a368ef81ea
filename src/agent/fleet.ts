/**
 * `modelsync status --hub <url>`: the fleet as the hub last heard it, one
 * line per site from the reports agents send after every pass.
 */
import { AuthError, EXIT, NetworkError, errorMessage } from '../errors.ts';
import { formatAge, formatDuration } from '../reconcile/format.ts';
import { escapeControl } from '../util/escape.ts';
import { redactUrl } from '../util/redact.ts';
import { fetchFailureReason } from './net-error.ts';

/** What the hub returns per site: the agent's report (AgentStatus) plus the hub's receivedAt. */
export interface FleetSite {
  site: string;
  receivedAt: string;
  health?: string;
  /** The agent's phase when it reported: `stopped` in the last report of an agent that shut down. */
  phase?: string;
  commit?: string | null;
  stalenessSeconds?: number | null;
  lastError?: string | null;
  models?: Array<{ model: string; declared?: string; desired?: string; active?: string | null; outcome?: string; drift?: string; verdictOwed?: { version: string }; soak?: { version?: string; reason?: string; overdue?: boolean } }>;
  lastPass?: { status?: string; conflicts?: Array<{ model: string }>; degraded?: Array<{ model: string; version: string }> } | null;
  [key: string]: unknown;
}

export async function fetchFleet(hub: string, token: string | undefined, fetchImpl: typeof fetch = fetch): Promise<FleetSite[]> {
  const url = `${hub.replace(/\/+$/, '')}/api/v1/sites`;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetchImpl(url, { headers, signal: AbortSignal.timeout(15_000) });
  } catch (err) {
    // fetch's own message is "fetch failed"; the reason (ECONNREFUSED, ENOTFOUND…) is its cause.
    const why = fetchFailureReason(err);
    throw new NetworkError(`cannot reach the hub at ${redactUrl(url)}: ${errorMessage(err)}${why ? ` (${why})` : ''}`, { url: redactUrl(url) }, err);
  }
  if (res.status === 401 && !token) {
    throw new AuthError(`the hub needs a token (HTTP 401) and none was given: give --token-file or MODELSYNC_TOKEN`, { url: redactUrl(url), status: res.status });
  }
  if (res.status === 401 || res.status === 403) {
    const why = res.status === 401 ? 'refused the token' : "accepted the token, but its role may not list the fleet (a site token lists only its own sites)";
    throw new AuthError(`the hub ${why} (HTTP ${res.status}); give --token-file or MODELSYNC_TOKEN`, { url: redactUrl(url), status: res.status });
  }
  if (!res.ok) throw new NetworkError(`GET ${redactUrl(url)} answered ${res.status}`, { url: redactUrl(url), status: res.status });
  const body = (await res.json()) as { sites?: unknown };
  if (!Array.isArray(body.sites)) throw new NetworkError(`GET ${redactUrl(url)}: not a fleet document`, { url: redactUrl(url) });
  return body.sites as FleetSite[];
}

export function renderFleet(sites: readonly FleetSite[], now = Date.now()): string {
  if (sites.length === 0) return 'no site has reported to this hub yet';
  const header = ['site', 'health', 'commit', 'reported', 'stale', 'models', 'notes'];
  const rows = sites.map((s) => {
    const models = s.models ?? [];
    // A version whose health verdict is owed is switched to, not yet in sync.
    const inSync = models.filter((m) => m.active === m.desired && !m.verdictOwed && !m.soak).length;
    const notes: string[] = [];
    for (const c of s.lastPass?.conflicts ?? []) notes.push(`conflict ${c.model}`);
    for (const d of s.lastPass?.degraded ?? []) notes.push(`degraded ${d.model} ${d.version}`);
    for (const m of models) if (m.verdictOwed) notes.push(`health check owed ${m.model} ${m.verdictOwed.version}`);
    // A metric gate still watching: switched and healthy so far, not yet in sync.
    for (const m of models) if (m.soak) notes.push(`soak ${m.model} ${String(m.soak.version ?? m.active ?? '?')}: ${String(m.soak.reason ?? 'metric gate watching').slice(0, 120)}`);
    // A break-glass pin is in sync with what the site was told to run, not with the registry: say so.
    for (const m of models) if (m.drift) notes.push(`pinned ${m.model} ${m.desired ?? m.active ?? '?'} (declared ${m.declared ?? '?'})`);
    if (s.health === 'Waiting') notes.push('Waiting (window)');
    if (s.condition === 'Stale' && typeof s.conditionReason === 'string') notes.push(s.conditionReason.slice(0, 100));
    // A service naming a model the site does not run is never restarted or checked: the health gate is off for it.
    for (const p of Array.isArray(s.serviceProblems) ? (s.serviceProblems as Array<{ service?: unknown; model?: unknown }>) : []) notes.push(`service ${String(p.service)} names ${String(p.model)}, which this site does not run`);
    if (s.lastError && fleetHealth(s) !== 'Ready') notes.push(s.lastError.slice(0, 100));
    if (s.phase === 'stopped' && fleetHealth(s) !== 'Stopped') notes.push('agent stopped');
    const age = Date.parse(s.receivedAt);
    const stale = staleSeconds(s, now);
    // Everything in a row came from a site's report: escaped, so a report cannot paint the terminal.
    return [
      s.site,
      fleetHealth(s),
      typeof s.commit === 'string' ? s.commit.slice(0, 12) : '-',
      Number.isFinite(age) ? `${formatDuration(Math.max(0, now - age))} ago` : '-',
      stale === null ? '-' : formatAge(stale),
      models.length ? `${inSync}/${models.length} in sync` : '-',
      notes.join('; '),
    ].map(escapeControl);
  });
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join('  ').trimEnd()).join('\n');
}

/**
 * The health to show: an agent that shut down sent a last report with phase
 * `stopped`; a Ready it said then is no longer watched by anyone, so it shows
 * as Stopped (other health stays, with the note "agent stopped").
 */
export function fleetHealth(s: Pick<FleetSite, 'health' | 'phase'> & { condition?: unknown }): string {
  // Anything else it said (Degraded, Progressing with a verdict owed) stays true, and stays shown.
  if (s.phase === 'stopped' && (s.health === undefined || s.health === 'Ready')) return 'Stopped';
  // Only the hub can know a site went silent: its condition says Stale where the last report cannot.
  if (s.condition === 'Stale') return 'Stale';
  return String(s.health ?? 'unknown');
}

/**
 * Staleness as of now, the one definition `status --store` and the agent's
 * /status use: seconds since the site last reached the registry. A report
 * carries it as of when it was sent; it has grown since the hub received it.
 */
export function staleSeconds(s: Pick<FleetSite, 'stalenessSeconds' | 'receivedAt'>, now = Date.now()): number | null {
  if (typeof s.stalenessSeconds !== 'number') return null;
  const received = Date.parse(s.receivedAt);
  return s.stalenessSeconds + (Number.isFinite(received) ? Math.max(0, now - received) / 1000 : 0);
}

/** 4 when a site is Degraded, 3 when one is in conflict (Degraded wins), else 0. */
export function fleetExitCode(sites: readonly FleetSite[]): number {
  const cond = (s: FleetSite): string => (typeof s.condition === 'string' ? s.condition : String(s.health ?? ''));
  if (sites.some((s) => cond(s) === 'Degraded' || (s.lastPass?.degraded ?? []).length > 0)) return EXIT.degraded;
  if (sites.some((s) => cond(s) === 'Conflict' || (s.lastPass?.conflicts ?? []).length > 0)) return EXIT.conflicts;
  return EXIT.ok;
}

export interface HubRollout {
  repo?: string;
  model: string;
  version: string;
  from: string;
  status: string;
  since?: string;
  reason?: string;
  waves: Array<{ name: string; sites: string[]; reached?: boolean; current?: boolean; soak?: string }>;
}

/**
 * The hub's staged rollouts (GET /api/v1/rollouts), or undefined where there are none to
 * show: an older hub (404), a site token (403), a hub without the controller. Never fatal:
 * the fleet table is what status is for.
 */
export async function fetchRollouts(hub: string, token: string | undefined, fetchImpl: typeof fetch = fetch): Promise<HubRollout[] | undefined> {
  try {
    const res = await fetchImpl(`${hub.replace(/\/+$/, '')}/api/v1/rollouts`, { headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, signal: AbortSignal.timeout(15_000) });
    if (!res.ok) return undefined;
    const body = (await res.json()) as { rollouts?: unknown };
    return Array.isArray(body.rollouts) ? (body.rollouts as HubRollout[]) : undefined;
  } catch {
    return undefined;
  }
}

/** One block per rollout: where it stands, and each wave with its sites (▶ current, ✓ reached). */
export function renderRollouts(rollouts: readonly HubRollout[]): string {
  const lines: string[] = [];
  for (const r of rollouts) {
    lines.push(`rollout ${r.repo ? `${r.repo}: ` : ''}${r.model} ${r.from} → ${r.version}: ${r.status}${r.reason ? ` (${r.reason})` : ''}`);
    for (const w of Array.isArray(r.waves) ? r.waves : []) {
      const sites = Array.isArray(w.sites) ? w.sites : [];
      lines.push(`  ${w.current ? '▶' : w.reached ? '✓' : ' '} ${String(w.name).padEnd(12)} ${sites.slice(0, 20).join(', ') || '(no site)'}${sites.length > 20 ? ` and ${sites.length - 20} more` : ''}`);
    }
  }
  // Registry text (model names, a halt reason): escaped like every other line from outside.
  return lines.map(escapeControl).join('\n');
}
