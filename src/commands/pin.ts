import { UsageError } from '../errors.ts';
import { NAME_RE, VERSION_RE, RESERVED_VERSION_NAMES } from '../registry/schema.ts';
import { StoreLayout, removePin, setPin } from '../store/index.ts';
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
  const file = await setPin(layout, opts.model!, version);
  if (opts.json) printJson(ctx, { ok: true, model: opts.model, version, pins: file.pins });
  else ctx.out(`pinned ${opts.model} to ${version} on this site. An agent running on this store activates it within a second (it watches pins.json); otherwise the next pass does (modelsync reconcile, agent --once). It is reported as drift (undo: modelsync unpin ${opts.model} --store ${opts.store})`);
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
