/** The pass's first steps: take the lock, fetch the registry, validate it, resolve the site's desired state. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LockedError, ValidationError } from '../errors.ts';
import { desiredState } from '../fleet/desired.ts';
import { formatDuration } from './format.ts';
import type { ResolvedSite } from '../registry/desired.ts';
import { loadRegistry, type Registry } from '../registry/load.ts';
import { acquireLock, pinMap, readState, type StoreLock, type StoreState } from '../store/index.ts';
import type { PassContext, Step } from './pass-context.ts';
import type { DesiredInput } from './plan.ts';
import { openRegistry } from './registry-access.ts';

export const lock: Step = async (ctx) => {
  if (ctx.opts.dryRun) {
    // Read-only: a dry run never creates the store, the lock or state.
    ctx.state = (await readState(ctx.store.layout)).state;
    ctx.pins = await pinMap(ctx.store.layout);
    return;
  }
  await ctx.store.ensure();
  ctx.lock = await lockWaiting(ctx);
  const loaded = await readState(ctx.store.layout, { moveAsideCorrupt: true });
  if (loaded.warning) {
    ctx.warnings.push(loaded.warning);
    ctx.logger.warn(loaded.warning);
  }
  ctx.state = loaded.state;
  ctx.pins = await pinMap(ctx.store.layout);
  // Leftovers of an interrupted pass (half-built directories, links never renamed) go; partial downloads stay to resume.
  await ctx.store.cleanTmp({ keepDownloads: 'all' });
};

export const fetchRegistry: Step = async (ctx) => {
  const cacheDir = ctx.opts.dryRun ? (ctx.dryRunDir = await mkdtemp(join(tmpdir(), 'modelsync-dry-run-'))) : ctx.store.layout.registryGitDir;
  ctx.opened = await openRegistry(
    { registry: ctx.opts.registry, branch: ctx.opts.branch ?? 'main', token: ctx.opts.token, timeoutMs: ctx.opts.networkTimeoutMs, expectedCommit: ctx.opts.expectedCommit },
    { cacheDir: ctx.opts.dryRun ? join(cacheDir, 'registry.git') : cacheDir, logger: ctx.logger },
  );
  ctx.state.lastFetchAt = ctx.now().toISOString();
  ctx.logger.debug({ commit: ctx.opened.commit, transferred: ctx.opened.transferred }, 'registry fetched');
};

/**
 * The desired state of the last fully validated commit, kept in state.json:
 * a commit names immutable content, so a pass at the same commit with the
 * same pins and site need not read and validate every manifest again.
 */
function reusableSnapshot(ctx: PassContext): StoreState['snapshot'] | undefined {
  const snap = ctx.state.snapshot;
  if (!snap) return undefined;
  if (snap.commit !== ctx.opened!.commit || snap.site !== ctx.opts.site) return undefined;
  if (JSON.stringify(sortedPins(snap.pins)) !== JSON.stringify(sortedPins(ctx.pins))) return undefined;
  return snap;
}

function sortedPins(p: Record<string, string>): Array<[string, string]> {
  return Object.entries(p).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

export async function loadValidated(ctx: PassContext): Promise<Registry> {
  if (ctx.registry) return ctx.registry;
  // Content is checked below only for what this site fetches (and every byte is verified anyway).
  const { registry, problems } = await loadRegistry(ctx.opened!.source, { checkContent: false });
  if (problems.length > 0) {
    throw new ValidationError(problems, `registry at commit ${ctx.opened!.commit.slice(0, 12)} is invalid; nothing was changed`);
  }
  ctx.registry = registry;
  return registry;
}

export const validate: Step = async (ctx) => {
  const snap = reusableSnapshot(ctx);
  if (snap) {
    ctx.site = snap.resolvedSite as unknown as ResolvedSite;
    ctx.desired = snap.desired as unknown as DesiredInput[];
    ctx.fromSnapshot = true;
    ctx.logger.debug({ commit: snap.commit }, 'registry unchanged since the last validated pass: reusing its desired state');
    return;
  }
  await loadValidated(ctx);
};

export const resolveDesired: Step = async (ctx) => {
  if (ctx.fromSnapshot) return;
  // The one resolution `modelsync plan` previews with (fleet/desired.ts).
  const state = desiredState(ctx.registry!, ctx.opts.site, { pins: ctx.pins });
  ctx.site = state.site;
  ctx.desired = state.models;
};

/**
 * The store lock; held by another live process (a running agent's pass), it is
 * waited for up to `lockWaitMs`, saying so once, then LockedError as before.
 */
async function lockWaiting(ctx: PassContext): Promise<StoreLock> {
  const path = ctx.store.layout.lockFile;
  const purpose = `reconcile ${ctx.opts.site}`;
  const waitMs = ctx.opts.lockWaitMs ?? 0;
  const until = performance.now() + waitMs;
  let said = false;
  for (;;) {
    try {
      const lock = await acquireLock(path, purpose);
      if (said) ctx.logger.warn({ waitedMs: Math.round(performance.now() - (until - waitMs)) }, 'store lock taken; going on');
      return lock;
    } catch (err) {
      if (!(err instanceof LockedError) || performance.now() >= until || ctx.signal?.aborted) throw err;
      if (!said) {
        ctx.logger.warn({ holder: err.data }, `${err.message}; waiting up to ${formatDuration(waitMs)} for it`);
        said = true;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
