import { NotFoundError } from '../errors.ts';
import { loadRegistry } from '../registry/load.ts';
import { openSource, resolveRepoDir } from '../registry/open.ts';
import { sortVersions } from '../registry/versions.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';

export interface ListOptions {
  repo?: string;
  rev?: string;
  json?: boolean;
}

/** `list`: every model with its current and previous version and how many versions exist. */
export async function listCommand(opts: ListOptions, ctx: CommandContext): Promise<number> {
  const source = await openSource(await resolveRepoDir(ctx.cwd, opts.repo), { rev: opts.rev });
  // Listing does not need every file hashed; validate does that.
  const { registry, problems } = await loadRegistry(source, { checkContent: false });
  const models = [...registry.models.values()].map((m) => ({
    name: m.name,
    current: m.entry?.current_version ?? null,
    previous: m.entry?.previous_version ?? null,
    scheme: m.scheme,
    versions: m.versions.size,
    description: m.entry?.description ?? null,
    released: m.entry !== undefined,
  }));
  if (opts.json) {
    printJson(ctx, { source: source.description, commit: source.commit, models, sites: [...registry.sites.keys()], problems: problems.length });
    return EXIT.ok;
  }
  const rows = models.map((m) => [m.name, m.current ?? '(not released)', m.previous ?? '-', String(m.versions)]);
  // Columns as wide as their widest cell: versions can be long (semver with a pre-release).
  const widths = [0, 1, 2].map((i) => Math.max(...[['MODEL', 'CURRENT', 'PREVIOUS'][i]!, ...rows.map((r) => r[i]!)].map((c) => c.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c)).join('  ');
  ctx.out(line(['MODEL', 'CURRENT', 'PREVIOUS', 'VERSIONS']));
  for (const r of rows) ctx.out(line(r));
  if (registry.sites.size) ctx.out(`\nsites: ${[...registry.sites.keys()].join(', ')}`);
  if (problems.length) ctx.out(`\n${problems.length} problem${problems.length === 1 ? '' : 's'}: run modelsync validate`);
  return EXIT.ok;
}

export interface VersionsOptions extends ListOptions {
  model?: string;
}

/** `versions <model>`: published versions oldest first, in the model's scheme order, marking current and previous. */
export async function versionsCommand(opts: VersionsOptions, ctx: CommandContext): Promise<number> {
  const source = await openSource(await resolveRepoDir(ctx.cwd, opts.repo), { rev: opts.rev });
  const { registry } = await loadRegistry(source, { checkContent: false });
  const model = opts.model ?? '';
  const info = registry.models.get(model);
  if (!info) {
    throw new NotFoundError(`model ${JSON.stringify(model)} is not in the registry (models: ${[...registry.models.keys()].join(', ') || 'none'})`, { model });
  }
  const names = sortVersions([...info.versions.keys(), ...info.broken], info.scheme ?? 'date');
  const rows = names.map((v) => {
    const vi = info.versions.get(v);
    return {
      version: v,
      current: info.entry?.current_version === v,
      previous: info.entry?.previous_version === v,
      broken: !vi,
      files: vi?.manifest.files.length ?? 0,
      bytes: vi?.manifest.files.reduce((n, f) => n + f.size, 0) ?? 0,
      date_deployed: vi?.manifest.date_deployed ?? null,
      framework: vi?.manifest.framework ?? null,
    };
  });
  if (opts.json) {
    printJson(ctx, { model: info.name, scheme: info.scheme, current: info.entry?.current_version ?? null, previous: info.entry?.previous_version ?? null, versions: rows });
    return EXIT.ok;
  }
  for (const r of rows) {
    const mark = r.current ? '* current' : r.previous ? '  previous' : r.broken ? '  (invalid manifest)' : '';
    ctx.out(`${r.version.padEnd(14)} ${String(r.files).padStart(3)} file${r.files === 1 ? ' ' : 's'} ${String(r.bytes).padStart(12)} bytes  ${mark}`.trimEnd());
  }
  return EXIT.ok;
}
