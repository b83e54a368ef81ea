import { UsageError } from '../errors.ts';
import { NAME_RE, VERSION_RE, RESERVED_VERSION_NAMES } from '../registry/schema.ts';
import { StoreLayout, removePin, setPin } from '../store/index.ts';
import { knownRegistry } from '../reconcile/known-registry.ts';
import { sortVersions } from '../registry/versions.ts';
import { suggest } from '../registry/zod-problems.ts';
import { printJson, EXIT, type CommandContext } from './context.ts';
import { requireStore } from './given-paths.ts';

export interface PinCommandOptions {
  model?: string;
  version?: string;
  store?: string;
  json?: boolean;
}

function storeLayout(opts: PinCommandOptions, ctx: CommandContext): StoreLayout {
  if (!opts.store || !opts.model) throw new UsageError('give a model and --store <dir>');
  const layout = new StoreLayout(requireStore(ctx, opts.store));
  if (!NAME_RE.test(opts.model)) throw new UsageError(`${JSON.stringify(opts.model)} is not a valid model name`);
  return layout;
}

/** A local break-glass pin: the next pass activates this version whatever the registry says, and reports drift. */
export async function pinCommand(opts: PinCommandOptions, ctx: CommandContext): Promise<number> {
  const version = opts.version ?? '';
  if (!VERSION_RE.test(version) || RESERVED_VERSION_NAMES.has(version)) throw new UsageError(`${JSON.stringify(version)} is not a valid version`);
  const layout = storeLayout(opts, ctx);
  const check = await checkPin(layout, opts.model!, version);
  const file = await setPin(layout, opts.model!, version);
  // Nothing to check against: allowed (break-glass), but never silently.
  if (opts.json) printJson(ctx, { ok: true, model: opts.model, version, pins: file.pins, ...(check ? { warning: check } : {}) });
  else ctx.out(`${check ? `WARNING: ${check}\n` : ''}pinned ${opts.model} to ${version} on this site. An agent running on this store activates it within a second (it watches pins.json); otherwise the next pass does (modelsync reconcile, agent --once). It is reported as drift (undo: modelsync unpin ${opts.model} --store ${opts.store})`);
  return EXIT.ok;
}

export async function unpinCommand(opts: PinCommandOptions, ctx: CommandContext): Promise<number> {
  const layout = storeLayout(opts, ctx);
  const was = await removePin(layout, opts.model!);
  if (opts.json) printJson(ctx, { ok: true, model: opts.model, removed: was ?? null });
  else if (was === undefined) ctx.out(`${opts.model} was not pinned`);
  else ctx.out(`unpinned ${opts.model} (was ${was}). An agent running on this store follows the registry again within a second (it watches pins.json); otherwise the next pass does. A pinned version newer than declared is then reported as a conflict until --force`);
  return EXIT.ok;
}

/**
 * A pin names a model the registry declares and a version it publishes, at
 * the last commit the store applied: a typo would otherwise pin nothing and
 * the pass would say in-sync. Throws on a bad pin; returns a warning when
 * there is nothing to check against.
 */
async function checkPin(layout: StoreLayout, model: string, version: string): Promise<string | undefined> {
  const known = await knownRegistry(layout);
  if (!known.known) return `cannot check the pin against the registry (${known.why}); if ${model} ${version} is not in the registry, the next pass fails for it`;
  const at = `the registry at ${known.commit.slice(0, 12)} (the last commit this store applied)`;
  const info = known.registry.models.get(model);
  if (!info?.entry) {
    const names = [...known.registry.models.values()].filter((m) => m.entry).map((m) => m.name);
    throw new UsageError(`${model} is not a model of ${at}${suggest(model, names)}; declared: ${names.sort().join(', ') || 'none'}`, { model, commit: known.commit });
  }
  if (!info.versions.has(version)) {
    const published = [...info.versions.keys()];
    const list = info.scheme ? sortVersions(published, info.scheme) : published.sort();
    throw new UsageError(`${model} ${version} is not published in ${at}${suggest(version, published)}; published: ${list.join(', ') || 'none'}`, { model, version, commit: known.commit });
  }
  return undefined;
}
