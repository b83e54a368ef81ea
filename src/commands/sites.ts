/** `modelsync sites`: the site × model matrix of declared versions (fleet/matrix.ts). */
import { loadRegistry } from '../registry/load.ts';
import { openSource, resolveRepoDir } from '../registry/open.ts';
import { escapeControl } from '../fleet/plan-format.ts';
import { siteMatrix, type MatrixCell } from '../fleet/matrix.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';

export interface SitesOptions {
  repo?: string;
  rev?: string;
  json?: boolean;
}

const PINS_NOTE = 'pins (modelsync pin) live in each site\'s store and are not known here; `modelsync status --hub` shows them as drift';

function cellText(c: MatrixCell | undefined): string {
  if (!c) return '-';
  const mark = c.source === 'override' ? (c.from?.startsWith('groups/') ? ` (override: ${c.from})` : ' (override)') : '';
  return `${c.version}${mark}${c.unpublished ? ' (not published!)' : ''}`;
}

export async function sitesCommand(opts: SitesOptions, ctx: CommandContext): Promise<number> {
  const source = await openSource(await resolveRepoDir(ctx.cwd, opts.repo), { rev: opts.rev });
  const { registry, problems } = await loadRegistry(source, { checkContent: false });
  const matrix = siteMatrix(registry);
  if (opts.json) {
    printJson(ctx, { source: source.description, commit: source.commit, ...matrix, pins: PINS_NOTE, problems: problems.length });
    return EXIT.ok;
  }
  if (matrix.sites.length === 0) {
    ctx.out(`no sites in the ${source.description} (add sites/<site>.yaml)`);
    return EXIT.ok;
  }
  const header = ['SITE', ...matrix.models, 'MODELS FROM'];
  const rows = matrix.sites.map((s) =>
    s.error !== undefined
      ? [s.site, `error: ${s.error}`]
      : [s.site, ...matrix.models.map((m) => cellText(s.models[m])), s.selectionFrom === undefined ? 'all models' : s.selectionFrom === s.site ? 'site file' : s.selectionFrom],
  ).map((r) => r.map(escapeControl));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r.length === header.length ? r[i]!.length : 0))));
  const line = (cells: string[]): string => cells.map((c, i) => (i < cells.length - 1 ? c.padEnd(widths[i]!) : c)).join('  ').trimEnd();
  ctx.out(line(header));
  for (const r of rows) ctx.out(line(r));
  ctx.out('');
  ctx.out('"-": the site does not select the model. "(override)": set in the site file; "(override: groups/x)": inherited from that group.');
  ctx.out(`Versions are what the ${source.description} declares; ${PINS_NOTE}.`);
  if (problems.length) ctx.out(`${problems.length} problem${problems.length === 1 ? '' : 's'}: run modelsync validate`);
  return EXIT.ok;
}
