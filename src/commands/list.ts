import { resolve } from 'node:path';
import { NotFoundError } from '../errors.ts';
import { loadRegistry } from '../registry/load.ts';
import { openSource } from '../registry/open.ts';
import { sortVersions } from '../registry/versions.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';

export interface ListOptions {
  repo?: string;
  rev?: string;
  json?: boolean;
}

/** `list`: every model with its current and previous version and how many versions exist. */
export async function listCommand(opts: ListOptions, ctx: CommandContext): Promise<number> {
  const source = await openSource(resolve(ctx.cwd, opts.repo ?? '.'), { rev: opts.rev });
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
  const width = Math.max(5, ...models.map((m) => m.name.length));
  ctx.out(`${'MODEL'.padEnd(width)}  ${'CURRENT'.padEnd(12)}  ${'PREVIOUS'.padEnd(12)}  VERSIONS`);
  for (const m of models) {
    ctx.out(`${m.name.padEnd(width)}  ${(m.current ?? '(not released)').padEnd(12)}  ${(m.previous ?? '-').padEnd(12)}  ${m.versions}`);
  }
  if (registry.sites.size) ctx.out(`\nsites: ${[...registry.sites.keys()].join(', ')}`);
  if (problems.length) ctx.out(`\n${problems.length} problem${problems.length === 1 ? '' : 's'}: run modelsync validate`);
  return EXIT.ok;
}

export interface VersionsOptions extends ListOptions {
  model?: string;
}

/** `versions <model>`: published versions oldest first, in the model's scheme order, marking current and previous. */
export async function versionsCommand(opts: VersionsOptions, ctx: CommandContext): Promise<number> {
  const source = await openSource(resolve(ctx.cwd, opts.repo ?? '.'), { rev: opts.rev });
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
