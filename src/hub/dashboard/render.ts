/**
 * The dashboard's HTML, server-rendered and complete without JavaScript.
 * Every string that came from a site report or the registry goes through
 * esc(): a site may be compromised, a commit subject is anyone's text.
 */
import { KNOWN_CONDITIONS } from '../site-condition.ts';
import { CSS, SCRIPT } from './assets.ts';
import type { Cell, DashboardView, TimelineEntry } from './view.ts';

/** Rows rendered at most; a bigger fleet shows its unhealthy sites first, then a count. */
export const MAX_ROWS = 1000;

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function conditionClass(condition: string): string {
  const word = condition.split(' ')[0]!;
  return (KNOWN_CONDITIONS as readonly string[]).includes(word) ? `c-${word.toLowerCase()}` : 'c-other';
}

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s ago`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.round(h / 24)} d ago`;
}

function ago(iso: string, now: number): string {
  const t = Date.parse(iso);
  return `<time datetime="${esc(iso)}" data-at="${esc(iso)}" title="${esc(iso)}">${Number.isFinite(t) ? formatAge(now - t) : '-'}</time>`;
}

function badge(condition: string, reason: string, key: string): string {
  const cls = conditionClass(condition);
  if (!reason) return `<span class="cond ${cls}"><span class="pill">${esc(condition)}</span></span>`;
  return `<details class="cond ${cls}" data-key="${esc(key)}"><summary title="${esc(reason)}">${esc(condition)}</summary><div class="why">${esc(reason)}</div></details>`;
}

function cell(c: Cell | undefined): string {
  if (!c) return '<td class="cell mute">–</td>';
  const title = c.note ? ` title="${esc(c.note)}"` : '';
  const declared = c.declared && c.declared !== c.active ? `<small>declared <span class="v">${esc(c.declared)}</span></small>` : '';
  const note = c.state === 'ok' ? '' : `<small>${esc(c.state)}${c.note ? `: ${esc(clip(c.note, 100))}` : ''}</small>`;
  return `<td class="cell ${c.state}" data-state="${c.state}"${title}><span class="v">${esc(c.active || '-')}</span>${declared}${note}</td>`;
}

function timelineItem(e: TimelineEntry, now: number): string {
  if (e.kind === 'deploy') {
    const d = e.deploy;
    return `<li data-kind="${d.kind}">${ago(d.at, now)}<span class="kind">${esc(d.kind)}</span><span>${esc(d.subject)}</span><span class="mute v">${esc(d.repo)} ${esc(d.commit.slice(0, 12))}</span></li>`;
  }
  const t = e.transition;
  const from = t.from === null ? '' : `${esc(t.from)} → `;
  return `<li data-kind="transition">${ago(t.at, now)}<span class="kind">site</span><span><b>${esc(t.site)}</b> ${from}<span class="${conditionClass(t.to)}">${esc(t.to)}</span></span>${t.reason ? `<span class="mute">${esc(clip(t.reason, 200))}</span>` : ''}</li>`;
}

export function renderDashboard(v: DashboardView, opts: { nonce: string; base: string; now: number }): string {
  const { now } = opts;
  let rows = v.sites;
  let hidden = 0;
  if (rows.length > MAX_ROWS) {
    rows = [...rows].sort((a, b) => Number(a.condition === 'Ready') - Number(b.condition === 'Ready') || a.site.localeCompare(b.site)).slice(0, MAX_ROWS);
    hidden = v.sites.length - rows.length;
  }
  const counts = [...v.counts.entries()].sort().map(([c, n]) => `<span class="${conditionClass(c)}">${esc(c)} ${n}</span>`).join('');
  const head = `<tr><th>site</th><th>condition</th><th>last report</th>${v.models.map((m) => `<th class="v">${esc(m)}</th>`).join('')}</tr>`;
  const body = rows.map((s) => `<tr data-site="${esc(s.site)}" data-condition="${esc(s.condition)}"><td class="site">${esc(s.site)}</td><td>${badge(s.condition, s.reason, `site:${s.site}`)}</td><td>${ago(s.receivedAt, now)}${s.commit ? `<small class="mute v"> ${esc(s.commit.slice(0, 8))}</small>` : ''}</td>${v.models.map((m) => cell(s.cells.get(m))).join('')}</tr>`).join('\n');
  const matrix = v.sites.length === 0
    ? '<p class="mute">No site has reported to this hub yet. Agents report after every pass (agent.yaml: <code>hub:</code>).</p>'
    : `<div class="scroll"><table id="matrix"><thead>${head}</thead><tbody>\n${body}\n</tbody></table></div>${hidden ? `<p class="mute">${hidden} more sites, all Ready, not shown.</p>` : ''}`;
  const rollouts = v.rollouts.length === 0 ? '' : `<section id="rollouts"><h2>Rollouts in progress</h2><div class="scroll"><table><thead><tr><th>model</th><th>version</th><th>from</th><th>wave</th><th>status</th><th>since</th></tr></thead><tbody>${v.rollouts.map((r) => `<tr><td class="v">${esc(r.model)}</td><td class="v">${esc(r.version)}</td><td class="v">${esc(r.from)}</td><td>${r.waves.map((w) => (w === r.wave ? `<b>${esc(w)}</b>` : esc(w))).join(' → ') || esc(r.wave)}</td><td>${esc(r.problem ? `unreadable: ${r.problem}` : r.status)}</td><td>${r.since ? ago(r.since, now) : ''}</td></tr>`).join('')}</tbody></table></div></section>`;
  const timeline = v.timeline.length === 0 ? '<p class="mute">Nothing yet: promotions, rollbacks and site transitions appear here.</p>' : `<ol class="timeline">${v.timeline.map((e) => timelineItem(e, now)).join('\n')}</ol>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>modelsync fleet</title><style>${CSS}</style></head>
<body><header><h1>modelsync fleet</h1><span class="mute">Git at <code>${esc(opts.base)}/&lt;repo&gt;.git</code></span><span id="conn" class="mute">not live (JavaScript off)</span></header>
<main id="live" data-generated="${esc(v.generatedAt)}">
<p class="counts">${v.sites.length} sites: ${counts || '<span class="mute">none</span>'}</p>
<section id="fleet"><h2>Sites × models</h2>${matrix}</section>
${rollouts}
<section id="timeline"><h2>Timeline</h2>${timeline}</section>
<p class="mute">Also: <a href="/api/v1/sites">/api/v1/sites</a> · <a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a> · events at <code>/api/v1/events</code>. Rendered ${ago(v.generatedAt, now)}.</p>
</main>
<script nonce="${opts.nonce}">${SCRIPT}</script>
</body></html>
`;
}
