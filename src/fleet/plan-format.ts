/**
 * A ChangePlan for people: plain text for a terminal, Markdown for a
 * pull-request comment (a summary line, a table per model, template diffs in
 * collapsible <details>, bytes humanised). Registry text (template output,
 * messages) is printed with control characters escaped, and a diff fence is
 * always longer than any backtick run inside it, so a template cannot break
 * out of its block in a comment.
 */
import { formatProblem } from '../errors.ts';
import { formatBytes } from '../util/bytes.ts';
import type { ChangePlan, ModelChange, SitePreview } from './preview.ts';

/** Control characters other than tab, shown as \xNN (a terminal or a comment must not interpret them). */
export function escapeControl(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f\u0080-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

function side(s: { label: string }): string {
  return escapeControl(s.label);
}

/** "12 MiB (delta; 1.0 GiB in full)" or "1.0 GiB". */
function bytesOf(x: { full: number; estimate: number; unknown?: boolean }): string {
  if (x.full === 0 && x.estimate === 0) return 'nothing to fetch';
  const est = `${x.unknown ? '≤ ' : ''}${formatBytes(x.estimate)}`;
  return x.estimate === x.full ? est : `${est} (${formatBytes(x.full)} in full)`;
}

function versions(m: ModelChange): string {
  return `${m.from ?? '—'} → ${m.to ?? '—'}`;
}

function fileLine(f: ModelChange['files'][number]): string {
  if (f.change === 'removed') return `${f.change} ${f.name}`;
  return `${f.change} ${f.name} (${formatBytes(f.size)}): fetch ${formatBytes(f.fetch)}, ${f.basis}`;
}

export function summaryLine(plan: ChangePlan): string {
  if (plan.sites.length === 0) {
    return `changes nothing: no site's models or rendered templates differ (${plural(plan.total, 'site')} checked)`;
  }
  const estimate = plan.estimate === plan.full ? formatBytes(plan.full) : `≈ ${formatBytes(plan.estimate)} (${formatBytes(plan.full)} in full)`;
  return `${plan.sites.length} of ${plural(plan.total, 'site')} change, ${plan.unaffected} unaffected; sites fetch ${estimate} in all`;
}

export function formatPlanText(plan: ChangePlan): string {
  const out: string[] = [`plan: ${side(plan.base)} → ${side(plan.head)}`, summaryLine(plan)];
  for (const s of plan.sites) {
    out.push('', `site ${s.site}${s.status === 'changed' ? '' : ` (${s.status === 'added' ? 'new site' : 'site file removed'})`}`);
    for (const e of s.errors) out.push(`  error: ${escapeControl(e)}`);
    for (const m of s.models) {
      // A rollback usually goes to the version the site kept as `previous`: then nothing is fetched.
      const kept = m.kind === 'rollback' && m.full > 0 ? ' (nothing if the site kept it as previous)' : '';
      out.push(`  ${m.model}  ${versions(m)}  ${m.kind}${m.reason === 'override' ? ' (override)' : ''}  ${bytesOf(m)}${kept}`);
      for (const f of m.files) out.push(`    ${fileLine(f)}`);
    }
    for (const t of s.templates) {
      out.push(`  template ${t.dest} (from ${t.src})${templateNote(t)}`);
      if (t.diff) out.push(...escapeControl(t.diff).trimEnd().split('\n').map((l) => `    ${l}`));
    }
  }
  if (plan.problems.length > 0) {
    out.push('', `head is invalid (${plural(plan.problems.length, 'problem')}); no site applies it:`);
    out.push(...plan.problems.map((p) => escapeControl(formatProblem(p))));
  }
  return `${out.join('\n')}\n`;
}

function templateNote(t: SitePreview['templates'][number]): string {
  if (t.dropped) return ': no longer declared; agents leave the last rendered file in place';
  if (t.error) return `: does not render at head, the site keeps its current file: ${escapeControl(t.error)}`;
  return '';
}

/** A code fence longer than any run of backticks in `text`. */
function fence(text: string): string {
  let longest = 0;
  for (const m of text.matchAll(/`+/g)) longest = Math.max(longest, m[0].length);
  return '`'.repeat(Math.max(3, longest + 1));
}

function cell(text: string): string {
  return escapeControl(text).replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function html(text: string): string {
  return escapeControl(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Sites named in one table row before "and N more". */
const MAX_SITES_PER_ROW = 12;
/** GitHub refuses comments over 65536 characters; Gitea and GitLab allow more. Diffs stop here. */
const COMMENT_BUDGET = 55_000;

export function formatPlanMarkdown(plan: ChangePlan): string {
  const out: string[] = [];
  const invalid = plan.problems.length > 0;
  out.push(`### modelsync plan: ${invalid ? '❌ head is invalid; ' : ''}${summaryLine(plan)}`, '');
  out.push(`\`${cell(plan.base.label)}\` → \`${cell(plan.head.label)}\``, '');
  if (invalid) {
    const text = plan.problems.map((p) => escapeControl(formatProblem(p))).join('\n');
    const f = fence(text);
    out.push(`**${plural(plan.problems.length, 'problem')}** (no site applies this head until they are fixed):`, '', f, text, f, '');
  }
  const byModel = new Map<string, Array<{ site: SitePreview; m: ModelChange }>>();
  for (const s of plan.sites) for (const m of s.models) byModel.set(m.model, [...(byModel.get(m.model) ?? []), { site: s, m }]);
  for (const [model, rows] of [...byModel].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    out.push(`#### ${cell(model)}`, '', '| site | version | kind | files | fetch (estimate) | in full |', '|---|---|---|---|---|---|');
    // Sites with the same change share a row: a fleet's comment stays readable.
    const groups = new Map<string, { sites: string[]; line: (sites: string) => string }>();
    for (const { site, m } of rows) {
      const files = m.files.length === 0 ? '—' : m.files.map((f) => `${f.change} \`${cell(f.name)}\``).join('<br>');
      const est = m.full === 0 ? '0 B' : `${m.unknown ? '≤ ' : ''}${formatBytes(m.estimate)}`;
      const rest = ` | ${cell(versions(m))} | ${m.kind}${m.reason === 'override' ? ' (override)' : ''} | ${files} | ${est} | ${formatBytes(m.full)} |`;
      const g = groups.get(rest) ?? { sites: [], line: (sites: string) => `| ${sites}${rest}` };
      g.sites.push(cell(site.site));
      groups.set(rest, g);
    }
    for (const g of groups.values()) {
      const shown = g.sites.length > MAX_SITES_PER_ROW ? `${g.sites.slice(0, MAX_SITES_PER_ROW).join(', ')} and ${g.sites.length - MAX_SITES_PER_ROW} more` : g.sites.join(', ');
      out.push(g.line(shown));
    }
    out.push('');
  }
  const errors = plan.sites.filter((s) => s.errors.length > 0);
  if (errors.length > 0) {
    out.push('#### Sites that will not apply head', '');
    for (const s of errors) for (const e of s.errors) out.push(`- **${cell(s.site)}**: ${cell(e)}`);
    out.push('');
  }
  const templated = plan.sites.filter((s) => s.templates.length > 0);
  if (templated.length > 0) {
    out.push('#### Rendered templates', '');
    let used = out.join('\n').length;
    let omitted = 0;
    for (const s of templated) {
      for (const t of s.templates) {
        if (used > COMMENT_BUDGET) {
          omitted++;
          continue;
        }
        const note = templateNote(t);
        out.push(`<details><summary>${html(s.site)}: <code>${html(t.dest)}</code> (from <code>${html(t.src)}</code>)${html(note)}</summary>`, '');
        if (t.diff) {
          const text = escapeControl(t.diff).trimEnd();
          const f = fence(text);
          out.push(`${f}diff`, text, f);
        }
        out.push('', '</details>', '');
        used = out.join('\n').length;
      }
    }
    if (omitted > 0) out.push(`${plural(omitted, 'more template diff')} not shown (a pull-request comment holds about 64 KB); \`modelsync plan\` prints them all.`, '');
  }
  if (plan.sites.length > 0) out.push(`${plural(plan.unaffected, 'other site')} unaffected. Fetch sizes are for a site that holds the version before the change (after a rollback, one that kept the older version as previous fetches nothing); chunk deltas are counted where both versions carry a chunk index (≤: an index was not available, so an upper bound). Local pins live on the sites and are not known here.`);
  return `${out.join('\n').trimEnd()}\n`;
}
