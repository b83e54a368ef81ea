/**
 * One reconcile pass as named steps (DESIGN.md, "Reconcile"):
 *
 *   lock → fetch registry → validate → resolve desired → observe → plan
 *        → fetch objects → build versions → switch → hooks → record state → retention
 *
 * Each step reads and writes one PassContext; the first step that throws ends
 * the pass (per-model problems are collected instead, so one bad model does
 * not hold the others back). `finish` is the one place that turns the outcome
 * into state.json, the summary log line and the ReconcileResult.
 */
import * as fs from 'node:fs';
import { mkdtemp, rm, stat, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import git from 'isomorphic-git';
import { ValidationError } from '../errors.ts';
import { MAX_POINTER_SIZE } from '../registry/lfs-pointer.ts';
import type { DeltaHints, ObjectFetcher, LfsObject } from '../lfs/types.ts';
import { silentLogger, type Logger } from '../log.ts';
import { desiredModels, resolveSite, type ResolvedSite } from '../registry/desired.ts';
import { versionFilePath } from '../registry/layout.ts';
import { loadRegistry, type Registry } from '../registry/load.ts';
import {
  Store, acquireLock, activate, buildVersion, collectGarbage, emptyState, listModels, observeModel, pinMap, readState, restore, versionIntact, writeState,
  noBarrier, type Barrier, type StoreLock, type StoreState, type VersionFile, type ObjectRef, type ModelState,
} from '../store/index.ts';
import type { ActivatedModel, ActivationHooks } from './hooks.ts';
import { defaultFetcherFactory, type FetcherFactory } from './fetcher.ts';
import { plan as makePlan, type DesiredInput, type ObservedInput, type Plan, type RememberedInput, type ModelPlan } from './plan.ts';
import { openRegistry, type OpenedRegistry } from './registry-access.ts';
import {
  asModelsyncError, exitCodeOf, passError, statusOf, type ModelOutcome, type PassError, type ReconcileResult,
} from './result.ts';
import { redactUrl } from '../util/redact.ts';
import { formatBytes } from './format.ts';
import { gitObjectSize } from './git-object-size.ts';

/**
 * Files kept as plain git blobs (not LFS pointers) are read into memory by
 * isomorphic-git; above this size they must be LFS objects.
 */
export const MAX_PLAIN_BLOB_BYTES = 64 << 20;

export interface PassProgress {
  phase: 'fetch';
  bytes: number;
  total: number;
  objectsDone: number;
  objects: number;
}

export interface ReconcileOptions {
  site: string;
  /** Registry URL (http/https) or local path (checkout or bare repo). */
  registry: string;
  /** Store directory. */
  store: string;
  branch?: string;
  /** Hub token (HTTP Basic password). */
  token?: string;
  /** A hint of the branch's new tip (from a hub event): a remote registry lacking it is fetched without listing refs first. */
  expectedCommit?: string;
  /** Apply declared versions over conflicts. */
  force?: boolean;
  /** Plan only: no lock, no state, nothing written to the store. */
  dryRun?: boolean;
  /** Services, health checks and templates (the agent); the CLI passes none. */
  hooks?: ActivationHooks;
  /** The object fetcher, or a factory for one (default: src/lfs). */
  fetcher?: ObjectFetcher | FetcherFactory;
  concurrency?: number;
  logger?: Logger;
  /** Called between durable steps; crash tests kill the process here. */
  barrier?: Barrier;
  now?: () => Date;
  onProgress?: (p: PassProgress) => void;
  signal?: AbortSignal;
  /** Apply the site's retention after a pass that changed something (default true). */
  retention?: boolean;
  /** How long a server (registry or LFS) may stay silent mid-request before the pass gives up on it (default 60 s). */
  networkTimeoutMs?: number;
  /** Largest file accepted as a plain git blob (default MAX_PLAIN_BLOB_BYTES). */
  maxPlainBlobBytes?: number;
  /** Free bytes on the store's filesystem, for tests (default: statfs). */
  freeBytes?: () => Promise<number>;
}

interface Activation {
  model: string;
  version: string;
  from?: string;
  previousBefore?: string;
  /** A repair of the active version: same version, services need nothing. */
  repair: boolean;
  /** Switched by an earlier pass that ended before its services were judged: judged now. */
  resumed?: { since: string; by: 'reconcile' | 'interrupted-pass' };
}

interface PassContext {
  opts: ReconcileOptions;
  logger: Logger;
  barrier: Barrier;
  now: () => Date;
  started: number;
  startedAt: string;
  store: Store;
  lock?: StoreLock;
  state: StoreState;
  pins: Record<string, string>;
  opened?: OpenedRegistry;
  registry?: Registry;
  site?: ResolvedSite;
  desired: DesiredInput[];
  plan?: Plan;
  /** Per-model errors; such a model goes no further this pass. */
  modelErrors: Map<string, PassError>;
  errors: PassError[];
  warnings: string[];
  bytesFetched: number;
  /** Bytes fetched per model (an object shared by models counts for the first); absent: not known for that model. */
  modelBytes: Map<string, number>;
  /** Models part of whose bytes the fetcher did not attribute to objects: their per-model figure is unknown. */
  modelBytesUnknown: Set<string>;
  /** Models whose objects are all present and may be built. */
  ready: Set<string>;
  activations: Activation[];
  degraded: Array<{ model: string; version: string; reason: string }>;
  /** Versions switched to, found unhealthy and switched back (failed → restored). */
  rolledBack: Array<{ model: string; failed: string; restored: string }>;
  /** Objects wanted but not fetched: their partial downloads are kept for the next pass. */
  unfetched: Set<string>;
  dryRunDir?: string;
  /** Desired state taken from state.json's snapshot (same commit, pins and site as a validated pass). */
  fromSnapshot?: boolean;
  /** Services of these models were restarted but the pass was stopped before their health was judged. */
  verdictOwed?: Set<string>;
  /** The hooks judged every switch of this pass (owed verdicts included). */
  judged?: boolean;
  /** Milliseconds spent in each step, for the debug log and the result. */
  stepMs: Record<string, number>;
}

type Step = (ctx: PassContext) => Promise<void>;

// ---------------------------------------------------------------- steps

const lock: Step = async (ctx) => {
  if (ctx.opts.dryRun) {
    // Read-only: a dry run never creates the store, the lock or state.
    ctx.state = (await readState(ctx.store.layout)).state;
    ctx.pins = await pinMap(ctx.store.layout);
    return;
  }
  await ctx.store.ensure();
  ctx.lock = await acquireLock(ctx.store.layout.lockFile, `reconcile ${ctx.opts.site}`);
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

const fetchRegistry: Step = async (ctx) => {
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

async function loadValidated(ctx: PassContext): Promise<Registry> {
  if (ctx.registry) return ctx.registry;
  // Content is checked below only for what this site fetches (and every byte is verified anyway).
  const { registry, problems } = await loadRegistry(ctx.opened!.source, { checkContent: false });
  if (problems.length > 0) {
    throw new ValidationError(problems, `registry at commit ${ctx.opened!.commit.slice(0, 12)} is invalid; nothing was changed`);
  }
  ctx.registry = registry;
  return registry;
}

const validate: Step = async (ctx) => {
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

const resolveDesired: Step = async (ctx) => {
  if (ctx.fromSnapshot) return;
  const registry = ctx.registry!;
  ctx.site = resolveSite(registry, ctx.opts.site);
  const desired = desiredModels(registry, ctx.site, ctx.pins);
  ctx.desired = [...desired.values()].map((d) => {
    const info = registry.models.get(d.model)!;
    const manifest = info.versions.get(d.version)?.manifest;
    return {
      ...d,
      scheme: info.scheme,
      files: manifest?.files.map((f) => ({ name: f.name, oid: f.sha256, size: f.size, ...(f.chunks ? { chunks: { oid: f.chunks.oid, size: f.chunks.size } } : {}) })),
    };
  });
};

/** Stat-only look at the store: which desired versions are complete, which objects are missing. */
async function observe(ctx: PassContext): Promise<Map<string, ObservedInput>> {
  const layout = ctx.store.layout;
  const out = new Map<string, ObservedInput>();
  for (const d of ctx.desired) {
    const obs = await observeModel(layout, d.model);
    const files = d.files ?? [];
    const intact = obs.versions.includes(d.version) && (await versionIntact(layout, d.model, d.version, files));
    const missing: ObjectRef[] = [];
    if (!intact) {
      for (const f of files) if (!(await ctx.store.objects.has(f))) missing.push({ oid: f.oid, size: f.size });
    }
    out.set(d.model, { active: obs.current, desiredIntact: intact, missing });
  }
  return out;
}

const planStep: Step = async (ctx) => {
  const observed = await observe(ctx);
  const remembered = new Map<string, RememberedInput>();
  for (const d of ctx.desired) {
    remembered.set(d.model, {
      lastApplied: ctx.state.models[d.model]?.lastApplied,
      degraded: ctx.state.degraded.filter((x) => x.model === d.model),
    });
  }
  ctx.plan = makePlan({ commit: ctx.opened!.commit, force: Boolean(ctx.opts.force), desired: ctx.desired, observed, remembered });
  for (const m of ctx.plan.models) {
    if (m.action === 'error') ctx.modelErrors.set(m.model, { code: 'NotFoundError', message: `${m.model}: ${m.detail}`, retry: 'stalling', model: m.model });
    if (m.action !== 'none') ctx.logger.debug({ model: m.model, action: m.action, reason: m.reason }, m.detail);
  }
};

/**
 * Before any byte is fetched: what each model still needs (objects minus
 * partial downloads already on disk) must fit in the free space of the
 * store's filesystem, models taken in plan order. A model that does not fit
 * fails with a clear error instead of filling the disk halfway.
 */
async function reserveSpace(ctx: PassContext, models: readonly ModelPlan[]): Promise<void> {
  const fetching = models.filter((m) => m.action === 'fetch' && !ctx.modelErrors.has(m.model));
  if (fetching.length === 0) return;
  const layout = ctx.store.layout;
  let free: number;
  try {
    free = ctx.opts.freeBytes ? await ctx.opts.freeBytes() : await statfs(layout.root).then((st) => st.bavail * st.bsize);
  } catch {
    return; // unknown: the download itself reports a full disk
  }
  const counted = new Set<string>();
  let planned = 0;
  for (const m of fetching) {
    let need = 0;
    const mine: string[] = [];
    for (const o of m.fetch) {
      if (counted.has(o.oid) || mine.includes(o.oid)) continue;
      const partial = await stat(join(layout.downloadsDir, `${o.oid}.part`)).then((st) => st.size, () => 0);
      need += Math.max(0, o.size - partial);
      mine.push(o.oid);
    }
    if (planned + need > free) {
      const left = Math.max(0, free - planned);
      ctx.modelErrors.set(m.model, {
        code: 'StoreError',
        message: `${m.model} ${m.desired} needs ${formatBytes(need)} on the store's filesystem (${layout.root}) but only ${formatBytes(left)} are free; nothing of it was downloaded and ${m.active ? `${m.active} stays active` : 'nothing is active yet'}. Free some space (modelsync gc, a lower retention.keep) and the next pass fetches it`,
        retry: 'stalling',
        model: m.model,
        data: { needBytes: need, freeBytes: left, diskFull: true },
      });
      continue;
    }
    planned += need;
    for (const oid of mine) counted.add(oid);
  }
}

/** A blob's size at the pass's commit, read from its object header (undefined when unknown). */
async function blobSizeAt(ctx: PassContext, path: string): Promise<number | undefined> {
  const { gitdir, commit } = ctx.opened!;
  const slash = path.lastIndexOf('/');
  try {
    const { tree } = await git.readTree({ fs, gitdir, oid: commit, filepath: path.slice(0, slash) });
    const entry = tree.find((e) => e.path === path.slice(slash + 1));
    return entry?.type === 'blob' ? await gitObjectSize(gitdir, entry.oid) : undefined;
  } catch {
    return undefined;
  }
}

const fetchObjects: Step = async (ctx) => {
  const plan = ctx.plan!;
  const source = ctx.opened!.source;
  const objects = ctx.store.objects;
  const wanted = plan.models.filter((m) => m.action === 'fetch' || m.action === 'activate');
  const lfsNeeded = new Map<string, LfsObject>();
  // For chunk-delta downloads: each object's chunk index, and which file of which model it will be.
  const chunkIndexes = new Map<string, LfsObject>();
  const deltaBases = new Map<string, Array<{ model: string; name: string; version: string }>>();
  const maxBlob = ctx.opts.maxPlainBlobBytes ?? MAX_PLAIN_BLOB_BYTES;

  await reserveSpace(ctx, wanted);
  for (const m of wanted) {
    if (m.action === 'activate') {
      ctx.ready.add(m.model);
      continue;
    }
    if (ctx.modelErrors.has(m.model)) continue;
    try {
      for (const [i, f] of m.files.entries()) {
        if (!m.fetch.some((o) => o.oid === f.oid)) continue;
        if (lfsNeeded.has(f.oid) || (await objects.has(f))) continue;
        const path = versionFilePath(m.model, m.desired, f.name);
        // The manifest's YAML, for positioned errors (loaded only when there is one to report).
        const problem = async (field: string, message: string): Promise<ValidationError> => {
          const yaml = (await loadValidated(ctx)).models.get(m.model)!.versions.get(m.desired)!.yaml;
          return new ValidationError([yaml.problem(['files', i, field], message)], 'registry is inconsistent');
        };
        const tooBig = (size: number): Promise<ValidationError> =>
          problem('name', `${path} is a plain git blob of ${formatBytes(size)}; files over ${formatBytes(maxBlob)} must be stored with Git LFS (a .gitattributes rule), so a site never reads them into memory`);
        // Refuse a huge plain blob from its object header, before anything reads it.
        const blobSize = await blobSizeAt(ctx, path);
        if (blobSize !== undefined && blobSize > Math.max(maxBlob, MAX_POINTER_SIZE)) throw await tooBig(blobSize);
        const content = await source.inspect(path);
        if (!content) throw await problem('name', `file ${path} is missing at this commit`);
        if (content.kind === 'pointer') {
          if (content.pointer.oid !== f.oid || content.pointer.size !== f.size) {
            throw await problem('sha256', `does not match the LFS pointer in ${path} (oid ${content.pointer.oid}, size ${content.pointer.size})`);
          }
          lfsNeeded.set(f.oid, { oid: f.oid, size: f.size });
          if (f.chunks) chunkIndexes.set(f.oid, f.chunks);
          deltaBases.set(f.oid, [...(deltaBases.get(f.oid) ?? []), { model: m.model, name: f.name, version: m.desired }]);
        } else {
          // A small file kept as a plain blob: its bytes come from git, verified here.
          if (content.size > maxBlob) throw await tooBig(content.size);
          if (content.size !== f.size) throw await problem('size', `is ${f.size} but ${path} has ${content.size} bytes`);
          await objects.writeVerified(await content.bytes(), f, path);
          ctx.bytesFetched += f.size;
          ctx.modelBytes.set(m.model, (ctx.modelBytes.get(m.model) ?? 0) + f.size);
        }
      }
    } catch (err) {
      ctx.modelErrors.set(m.model, passError(err, m.model));
    }
  }

  const failedOids = new Map<string, PassError>();
  if (lfsNeeded.size > 0) {
    const fetcher = await makeFetcher(ctx);
    const total = [...lfsNeeded.values()].reduce((n, o) => n + o.size, 0);
    const progress = new Map<string, number>();
    let done = 0;
    let bytesSoFar = 0;
    const advance = (oid: string, bytes: number): void => {
      bytesSoFar += bytes - (progress.get(oid) ?? 0);
      progress.set(oid, bytes);
      ctx.opts.onProgress?.({ phase: 'fetch', bytes: bytesSoFar, total, objectsDone: done, objects: lfsNeeded.size });
    };
    ctx.logger.debug({ objects: lfsNeeded.size, bytes: total, from: fetcher.description }, 'fetching objects');
    try {
      const res = await fetcher.fetch([...lfsNeeded.values()], {
        tmpDir: ctx.store.layout.downloadsDir,
        signal: ctx.opts.signal,
        delta: chunkIndexes.size === 0 ? undefined : deltaHints(ctx, chunkIndexes, deltaBases),
        onVerified: async (obj, path) => {
          await objects.adopt(path, obj);
          done++;
          advance(obj.oid, obj.size);
          await ctx.barrier(`fetch:verified:${obj.oid}`);
        },
        onProgress: (p) => advance(p.oid, p.bytes),
      });
      ctx.bytesFetched += res.bytesTransferred;
      attributeBytes(ctx, res.bytesTransferred, res.bytesByOid, deltaBases);
      for (const f of res.failed) failedOids.set(f.obj.oid, passError(f.error));
    } catch (err) {
      const e = passError(err);
      // The fetcher's count of what crossed the network was lost with it: per model too.
      for (const o of deltaBases.values()) ctx.modelBytesUnknown.add(o[0]!.model);
      for (const oid of lfsNeeded.keys()) if (!(await objects.has(lfsNeeded.get(oid)!))) failedOids.set(oid, e);
    } finally {
      // A fetcher built for this pass closes its keep-alive connections (they would hold a one-shot CLI open).
      if (typeof ctx.opts.fetcher !== 'object') (fetcher as { close?: () => void }).close?.();
    }
    // Trust, but check: every object the plan needs must now be in the store.
    for (const o of lfsNeeded.values()) {
      if (!failedOids.has(o.oid) && !(await objects.has(o))) {
        failedOids.set(o.oid, { code: 'NotFoundError', message: `object ${o.oid} was not delivered by ${fetcher.description}`, retry: 'generic' });
      }
    }
  }

  for (const m of wanted) {
    if (m.action !== 'fetch' || ctx.modelErrors.has(m.model)) continue;
    const failures = m.fetch.map((o) => failedOids.get(o.oid)).filter((e): e is PassError => e !== undefined);
    if (failures.length > 0) {
      for (const o of m.fetch) if (failedOids.has(o.oid)) ctx.unfetched.add(o.oid);
      const first = failures[0]!;
      ctx.modelErrors.set(m.model, {
        ...first,
        model: m.model,
        message: `${m.model} ${m.desired}: ${first.message}${failures.length > 1 ? ` (and ${failures.length - 1} more object${failures.length > 2 ? 's' : ''})` : ''}; ${m.active ? `${m.active} stays active` : 'nothing is active yet'}`,
      });
    } else {
      ctx.ready.add(m.model);
    }
  }
};

/**
 * Per-model fetched bytes for the human output: each object's bytes go to the
 * first model that needed it. A fetcher that does not report bytes per object
 * leaves the figure unknown, unless a single model fetched everything.
 */
function attributeBytes(
  ctx: PassContext,
  total: number,
  byOid: Readonly<Record<string, number>> | undefined,
  owners: ReadonlyMap<string, ReadonlyArray<{ model: string }>>,
): void {
  const add = (model: string, n: number): void => void ctx.modelBytes.set(model, (ctx.modelBytes.get(model) ?? 0) + n);
  const models = new Set([...owners.values()].map((o) => o[0]!.model));
  if (byOid) {
    for (const [oid, o] of owners) add(o[0]!.model, byOid[oid] ?? 0);
  } else if (models.size === 1) {
    add([...models][0]!, total);
  } else {
    for (const m of models) ctx.modelBytesUnknown.add(m);
  }
}

/**
 * What a chunk-delta download may reuse: the same file (by name) in the
 * versions this site already holds of the same model, `current` first, then
 * `previous`. Two at most: each candidate is read whole to find its chunks.
 */
function deltaHints(
  ctx: PassContext,
  chunkIndexes: ReadonlyMap<string, LfsObject>,
  bases: ReadonlyMap<string, ReadonlyArray<{ model: string; name: string; version: string }>>,
): DeltaHints {
  const layout = ctx.store.layout;
  return {
    chunkIndex: (obj) => chunkIndexes.get(obj.oid),
    async localCandidates(obj) {
      const out: string[] = [];
      for (const b of bases.get(obj.oid) ?? []) {
        const obs = await observeModel(layout, b.model);
        for (const v of [obs.current, obs.previous]) {
          if (v === undefined || v === b.version) continue;
          const path = layout.versionFile(b.model, v, b.name);
          if (!out.includes(path) && (await stat(path).then((st) => st.isFile(), () => false))) out.push(path);
        }
      }
      return out.slice(0, 2);
    },
  };
}

async function makeFetcher(ctx: PassContext): Promise<ObjectFetcher> {
  const given = ctx.opts.fetcher;
  if (given && typeof given === 'object') return given;
  const factory = (given as FetcherFactory | undefined) ?? defaultFetcherFactory;
  const lfs = ctx.opened!.lfs;
  return factory({
    remote: lfs.remote,
    gitdir: lfs.gitdir,
    lfsconfig: lfs.lfsconfig,
    token: lfs.token,
    concurrency: ctx.opts.concurrency,
    limitKbps: ctx.site?.bandwidth?.limit_kbps,
    timeoutMs: ctx.opts.networkTimeoutMs,
    logger: ctx.logger,
  });
}

const buildVersions: Step = async (ctx) => {
  for (const m of ctx.plan!.models) {
    if (!ctx.ready.has(m.model) || ctx.modelErrors.has(m.model)) continue;
    try {
      await buildVersion(ctx.store.layout, m.model, m.desired, m.files as VersionFile[], ctx.barrier);
    } catch (err) {
      ctx.modelErrors.set(m.model, passError(err, m.model));
      ctx.ready.delete(m.model);
    }
  }
};

const switchCurrent: Step = async (ctx) => {
  for (const m of ctx.plan!.models) {
    if (!ctx.ready.has(m.model) || ctx.modelErrors.has(m.model)) continue;
    try {
      const { from, previousBefore } = await activate(ctx.store.layout, m.model, m.desired, ctx.barrier);
      ctx.activations.push({ model: m.model, version: m.desired, from, previousBefore, repair: from === m.desired });
    } catch (err) {
      ctx.modelErrors.set(m.model, passError(err, m.model));
    }
  }
};

/**
 * Switches an earlier pass made but never saw judged (it was stopped or
 * crashed while services restarted or were health-checked): still active and
 * still what the site wants, so they are judged in this pass.
 */
function resumeOwedVerdicts(ctx: PassContext): void {
  for (const v of ctx.state.verifying) {
    const m = ctx.plan?.models.find((x) => x.model === v.model);
    if (!m || m.action !== 'none' || m.reason !== 'in-sync' || m.active !== v.version) continue; // superseded
    if (ctx.activations.some((a) => a.model === v.model)) continue;
    ctx.activations.push({
      model: v.model, version: v.version, from: v.from, previousBefore: v.previousBefore, repair: false,
      resumed: { since: v.since, by: v.by === 'reconcile' ? 'reconcile' : 'interrupted-pass' },
    });
    if (v.by === 'reconcile') {
      ctx.logger.info({ model: v.model, version: v.version, since: v.since }, 'activated by `modelsync reconcile`, which restarts no service: restarting its services and checking their health now');
    } else {
      ctx.logger.warn({ model: v.model, version: v.version, since: v.since }, 'an earlier pass stopped before this switch was health-checked; checking it now');
    }
  }
}

const runHooks: Step = async (ctx) => {
  const hooks = ctx.opts.hooks;
  if (!hooks) return;
  if (hooks.onRegistry && ctx.opened && ctx.site) {
    hooks.onRegistry({
      commit: ctx.opened.commit, source: ctx.opened.source, site: ctx.site, desired: ctx.desired, loadRegistry: () => loadValidated(ctx),
    });
  }
  await judgeSwitches(ctx, hooks);
  if (hooks.settle) {
    try {
      ctx.warnings.push(...(await hooks.settle()).warnings);
    } catch (err) {
      ctx.warnings.push(`after the pass: ${asModelsyncError(err).message}`);
    }
  }
};

/** Restart and health-check the services of switched models; switch back the models of unhealthy ones. */
async function judgeSwitches(ctx: PassContext, hooks: ActivationHooks): Promise<void> {
  resumeOwedVerdicts(ctx);
  const changed = ctx.activations.filter((a) => !a.repair);
  if (changed.length === 0) {
    ctx.judged = true;
    return;
  }
  const layout = ctx.store.layout;
  // Durable before any service restarts: if this pass dies before the verdict, the next one owes it.
  const since = ctx.now().toISOString();
  ctx.state.verifying = changed.map((a) => ({
    model: a.model, version: a.version, from: a.from, previousBefore: a.previousBefore, commit: ctx.opened!.commit, since,
  }));
  await writeState(layout, ctx.state);
  await ctx.barrier('hooks:verifying');
  const activated: ActivatedModel[] = changed.map((a) => ({ model: a.model, version: a.version, from: a.from, currentDir: layout.link(a.model, 'current') }));
  const stopped = (): boolean => ctx.opts.signal?.aborted === true;
  const owe = (why: string): void => {
    ctx.verdictOwed = new Set(changed.map((a) => a.model));
    const what = changed.map((a) => `${a.model} ${a.version}`).join(', ');
    ctx.warnings.push(`the pass was interrupted before the health of ${what} was judged (${why}); ${changed.length > 1 ? 'they stay' : 'it stays'} active and the next pass checks again`);
  };
  let unhealthy;
  try {
    ({ unhealthy } = await hooks.afterSwitch(activated));
  } catch (err) {
    if (stopped()) return owe(asModelsyncError(err).message);
    ctx.errors.push(passError(err));
    return;
  }
  // A check cut short by the stop says nothing about the version: no rollback, no Degraded.
  if (unhealthy.length > 0 && stopped()) return owe('stopping');
  ctx.judged = true;
  const rolledBack: ActivatedModel[] = [];
  for (const svc of unhealthy) {
    for (const model of svc.models) {
      const a = changed.find((x) => x.model === model);
      if (!a || ctx.degraded.some((d) => d.model === model)) continue;
      const reason = `service ${svc.service} failed its health check on ${model} ${a.version}: ${svc.reason}`;
      ctx.degraded.push({ model, version: a.version, reason });
      if (a.from === undefined) {
        ctx.warnings.push(`${model} ${a.version} is unhealthy but there is no earlier version to go back to; it stays active`);
        continue;
      }
      try {
        await restore(layout, model, a.from, a.previousBefore);
        rolledBack.push({ model, version: a.from, from: a.version, currentDir: layout.link(model, 'current') });
        ctx.rolledBack.push({ model, failed: a.version, restored: a.from });
      } catch (err) {
        ctx.errors.push(passError(err, model));
      }
    }
  }
  if (rolledBack.length > 0) {
    try {
      await hooks.afterRollback(rolledBack);
    } catch (err) {
      ctx.errors.push(passError(err));
    }
  }
}

const STEPS: Array<[string, Step]> = [
  ['lock', lock],
  ['fetch-registry', fetchRegistry],
  ['validate', validate],
  ['resolve-desired', resolveDesired],
  ['plan', planStep],
  ['fetch-objects', fetchObjects],
  ['build-versions', buildVersions],
  ['switch', switchCurrent],
  ['hooks', runHooks],
];

const DRY_RUN_STEPS = new Set(['lock', 'fetch-registry', 'validate', 'resolve-desired', 'plan']);

// ---------------------------------------------------------------- the pass

export async function reconcile(opts: ReconcileOptions): Promise<ReconcileResult> {
  const now = opts.now ?? (() => new Date());
  const ctx: PassContext = {
    opts,
    logger: opts.logger ?? silentLogger,
    barrier: opts.barrier ?? noBarrier,
    now,
    started: performance.now(),
    startedAt: now().toISOString(),
    store: new Store(resolve(opts.store)),
    state: emptyState(),
    pins: {},
    desired: [],
    modelErrors: new Map(),
    errors: [],
    warnings: [],
    bytesFetched: 0,
    modelBytes: new Map(),
    modelBytesUnknown: new Set(),
    ready: new Set(),
    activations: [],
    degraded: [],
    rolledBack: [],
    unfetched: new Set(),
    stepMs: {},
  };
  try {
    for (const [name, step] of STEPS) {
      if (opts.dryRun && !DRY_RUN_STEPS.has(name)) break;
      const t = performance.now();
      await step(ctx);
      ctx.stepMs[name] = Math.round(performance.now() - t);
      ctx.logger.debug({ step: name, ms: ctx.stepMs[name] }, 'step done');
      await ctx.barrier(`step:${name}`);
    }
  } catch (err) {
    ctx.errors.push(passError(err));
  }
  return finish(ctx);
}

/** The one place that turns a pass into state, a log line and a result. */
async function finish(ctx: PassContext): Promise<ReconcileResult> {
  const { opts } = ctx;
  for (const [, e] of ctx.modelErrors) ctx.errors.push(e);
  const outcomes = outcomesOf(ctx);
  // A dry run reports the switches it would make, so its status and summary say what a pass would do.
  const changed = opts.dryRun
    ? (ctx.plan?.models ?? [])
      .filter((m) => (m.action === 'fetch' || m.action === 'activate') && m.reason !== 'repair' && !ctx.modelErrors.has(m.model))
      .map((m) => ({ model: m.model, from: m.active, to: m.desired }))
    : ctx.activations
      .filter((a) => !a.repair && !ctx.degraded.some((d) => d.model === a.model))
      .map((a) => ({ model: a.model, from: a.from, to: a.version }));
  const conflicts = (ctx.plan?.conflicts ?? []).map((m) => ({ model: m.model, active: m.active, declared: m.desired, detail: m.detail }));
  const skippedDegraded = (ctx.plan?.models ?? []).filter((m) => m.reason === 'degraded');
  const degraded = [...ctx.degraded, ...skippedDegraded.map((m) => ({ model: m.model, version: m.desired, reason: m.detail }))];
  const status = statusOf({ errors: ctx.errors, degraded, conflicts, changed });
  const unmanaged = await unmanagedModels(ctx).catch(() => []);
  if (unmanaged.length > 0) ctx.logger.debug({ unmanaged: unmanaged.map((u) => u.model) }, 'models no longer selected by the site stay as they are');

  if (!opts.dryRun && ctx.lock) {
    try {
      await recordState(ctx, { status, changed, conflicts, unmanaged });
      await ctx.barrier('step:record');
    } catch (err) {
      ctx.errors.push(passError(err));
    }
    if (opts.retention !== false && ctx.site && ctx.activations.length > 0) {
      try {
        await applyRetention(ctx);
      } catch (err) {
        ctx.warnings.push(`retention failed: ${asModelsyncError(err).message}`);
      }
    }
    await ctx.store.cleanTmp({ keepDownloads: ctx.errors.length > 0 ? ctx.unfetched : new Set() }).catch(() => {});
  }
  await ctx.lock?.release().catch(() => {});
  if (ctx.dryRunDir) await rm(ctx.dryRunDir, { recursive: true, force: true }).catch(() => {});

  const finalStatus = statusOf({ errors: ctx.errors, degraded, conflicts, changed });
  const result: ReconcileResult = {
    status: finalStatus,
    exitCode: exitCodeOf(finalStatus),
    dryRun: Boolean(opts.dryRun),
    site: opts.site,
    registry: ctx.opened?.description ?? describeRegistry(opts.registry),
    commit: ctx.opened?.commit,
    models: outcomes,
    changed,
    rolledBack: ctx.rolledBack,
    conflicts,
    degraded,
    unmanaged,
    bytesFetched: ctx.bytesFetched,
    registryReachedAt: ctx.opened ? ctx.state.lastFetchAt : undefined,
    bytesPlanned: ctx.plan?.bytes ?? 0,
    durationMs: Math.round(performance.now() - ctx.started),
    errors: ctx.errors,
    warnings: ctx.warnings,
    startedAt: ctx.startedAt,
    stepMs: ctx.stepMs,
    desiredFrom: ctx.fromSnapshot ? 'snapshot' : ctx.registry ? 'registry' : undefined,
  };
  const switches = changed.map((c) => `${c.model}:${c.from ?? '-'}→${c.to}`);
  const summary = {
    site: result.site,
    commit: result.commit?.slice(0, 12),
    status: result.status,
    // A dry run changed nothing: its keys say what it would do.
    ...(result.dryRun ? { dryRun: true, wouldChange: switches, bytesToFetch: result.bytesPlanned } : { changed: switches, bytesFetched: result.bytesFetched }),
    ...(ctx.rolledBack.length > 0 ? { rolledBack: ctx.rolledBack.map((r) => `${r.model}:${r.failed}→${r.restored}`) } : {}),
    ...(degraded.length > 0 ? { degraded: degraded.map((d) => `${d.model}:${d.version}`) } : {}),
    durationMs: result.durationMs,
    conflicts: conflicts.map((c) => c.model),
    errors: ctx.errors.map((e) => `${e.code}: ${e.message.split('\n')[0]}`),
  };
  const message = result.dryRun ? 'reconcile dry run (nothing applied)' : 'reconcile pass';
  if (result.status === 'failed') ctx.logger.error(summary, message);
  else if (result.status === 'conflict' || result.status === 'degraded') ctx.logger.warn(summary, message);
  else ctx.logger.info(summary, message);
  return result;
}

/** Models in the store the site did not select this pass (known once the pass planned). */
async function unmanagedModels(ctx: PassContext): Promise<ReconcileResult['unmanaged']> {
  if (!ctx.plan) return [];
  const selected = new Set(ctx.plan.models.map((m) => m.model));
  const out: ReconcileResult['unmanaged'] = [];
  for (const model of await listModels(ctx.store.layout)) {
    if (selected.has(model)) continue;
    const obs = await observeModel(ctx.store.layout, model).catch(() => undefined);
    out.push(obs?.current ? { model, active: obs.current } : { model });
  }
  return out;
}

function describeRegistry(registry: string): string {
  return /^https?:\/\//i.test(registry) ? redactUrl(registry) : resolve(registry);
}

function outcomesOf(ctx: PassContext): ModelOutcome[] {
  return (ctx.plan?.models ?? []).map((m: ModelPlan) => {
    const act = ctx.activations.find((a) => a.model === m.model);
    const deg = ctx.degraded.find((d) => d.model === m.model);
    const error = ctx.modelErrors.get(m.model);
    let outcome: ModelOutcome['outcome'];
    let active = m.active;
    if (ctx.opts.dryRun) outcome = m.action === 'none' ? 'unchanged' : m.action === 'conflict' ? 'conflict' : m.action === 'error' ? 'failed' : 'planned';
    else if (error) outcome = 'failed';
    else if (deg) {
      outcome = 'degraded';
      active = act?.from ?? act?.version ?? m.active;
    } else if (m.reason === 'degraded') outcome = 'degraded';
    else if (act) {
      outcome = 'activated';
      active = act.version;
    } else if (m.action === 'conflict') outcome = 'conflict';
    else if (m.action === 'none') outcome = 'unchanged';
    else outcome = 'failed';
    const o: ModelOutcome = {
      model: m.model,
      action: m.action,
      reason: m.reason,
      detail: m.detail,
      outcome,
      desired: m.desired,
      declared: m.declared,
      desiredReason: m.desiredReason,
      from: m.active,
      active,
      bytes: m.bytes,
    };
    if (m.drift) o.drift = m.drift;
    if (error) o.error = error;
    if (!ctx.opts.dryRun && (m.action === 'fetch' || m.action === 'activate') && !ctx.modelBytesUnknown.has(m.model)) {
      o.bytesFetched = ctx.modelBytes.get(m.model) ?? 0;
    }
    // Not switched by this pass: the services' verdict owed for a switch an earlier pass made.
    if (act?.resumed) o.owedVerdict = { ...act.resumed, ...(act.from !== undefined ? { from: act.from } : {}) };
    return o;
  });
}

async function recordState(
  ctx: PassContext,
  r: Pick<ReconcileResult, 'status' | 'changed' | 'conflicts' | 'unmanaged'>,
): Promise<void> {
  const at = ctx.now().toISOString();
  const s = ctx.state;
  const commit = ctx.opened?.commit;
  s.site = ctx.opts.site;
  s.registry = ctx.opened?.description ?? describeRegistry(ctx.opts.registry);
  s.branch = ctx.opts.branch ?? 'main';
  s.pins = { ...ctx.pins };
  if (ctx.site) s.retentionKeep = ctx.site.retention.keep;
  if (commit) {
    s.attemptedCommit = commit;
    s.attemptedAt = at;
  }
  if (ctx.plan && commit) {
    for (const m of ctx.plan.models) {
      const prev: ModelState = s.models[m.model] ?? {};
      const act = ctx.activations.find((a) => a.model === m.model);
      const deg = ctx.degraded.find((d) => d.model === m.model);
      const next: ModelState = { ...prev, declared: m.declared, desired: m.desired, reason: m.desiredReason };
      const nowActive = deg ? (act?.from ?? act?.version) : act ? act.version : m.active;
      next.active = nowActive;
      // What the registry (not a pin, not a hand) put in place, and its services accepted, is the base of the conflict rule.
      const fromRegistry = m.desiredReason !== 'pin';
      // A switch made by `reconcile` (no services to judge it) is still the registry's: it moves lastApplied,
      // so a later revert is a rollback, not a conflict. Only a verdict owed by a stopped agent pass holds it.
      const owed = ctx.verdictOwed?.has(m.model) || (!ctx.judged && s.verifying.some((v) => v.model === m.model && v.by !== 'reconcile'));
      if (fromRegistry && nowActive === m.desired && !deg && !owed && !ctx.modelErrors.has(m.model)) {
        if (prev.lastApplied !== m.desired) {
          next.lastApplied = m.desired;
          next.lastAppliedAt = at;
          next.lastAppliedCommit = commit;
        }
      }
      // Such a switch judged later and rolled back: the version gone back to is the base again.
      const rb = ctx.rolledBack.find((x) => x.model === m.model);
      if (rb && prev.lastApplied === rb.failed) {
        next.lastApplied = rb.restored;
        next.lastAppliedAt = at;
        delete next.lastAppliedCommit;
      }
      if (m.action === 'conflict') {
        next.conflict = { active: m.active ?? '', declared: m.desired, since: prev.conflict?.active === m.active && prev.conflict?.declared === m.desired ? prev.conflict.since : at };
      } else {
        delete next.conflict;
      }
      delete next.unmanagedSince;
      s.models[m.model] = next;
    }
    // No longer selected: left as they are, remembered as unmanaged; forgotten once gone from the store.
    s.selected = ctx.plan.models.map((m) => m.model);
    for (const model of Object.keys(s.models)) {
      if (!s.selected.includes(model) && !r.unmanaged.some((u) => u.model === model)) delete s.models[model];
    }
    for (const u of r.unmanaged) {
      const { desired: _d, reason: _r, conflict: _c, ...prev } = s.models[u.model] ?? {};
      s.models[u.model] = { ...prev, active: u.active, unmanagedSince: prev.unmanagedSince ?? at };
    }
    // Verdicts still owed: all judged, or those a stopped pass left, or (a pass without services) those still active.
    if (ctx.judged) s.verifying = [];
    else if (!ctx.verdictOwed) {
      s.verifying = s.verifying.filter((v) => {
        const m = ctx.plan!.models.find((x) => x.model === v.model);
        const act = ctx.activations.find((a) => a.model === v.model && !a.repair);
        return m ? !act && m.active === v.version : true;
      });
    }
    // A pass without services (`modelsync reconcile`) switched versions no service was restarted for:
    // the verdict is owed, and the agent's next pass restarts and health-checks them once.
    if (!ctx.opts.hooks) {
      // Nobody will judge a switch of a model the site no longer selects.
      s.verifying = s.verifying.filter((v) => v.by !== 'reconcile' || s.selected!.includes(v.model));
      for (const a of ctx.activations) {
        if (a.repair) continue;
        s.verifying = [
          ...s.verifying.filter((v) => v.model !== a.model),
          { model: a.model, version: a.version, from: a.from, previousBefore: a.previousBefore, commit, since: at, by: 'reconcile' },
        ];
      }
    }
    // Degraded versions are remembered for this commit only: a new commit retries them.
    s.degraded = [
      ...s.degraded.filter((d) => d.commit === commit && !ctx.degraded.some((x) => x.model === d.model)),
      ...ctx.degraded.map((d) => ({ ...d, commit, since: at })),
    ];
  }
  if (commit && ctx.site && ctx.registry && !ctx.fromSnapshot) {
    s.snapshot = { commit, site: ctx.opts.site, pins: { ...ctx.pins }, resolvedSite: ctx.site as unknown as Record<string, unknown>, desired: ctx.desired as unknown as Array<Record<string, unknown>> };
  }
  // Applied means the store runs what the commit declares: a version that failed its health check (and
  // was switched back, or had nothing to go back to) was attempted, not applied.
  if (ctx.errors.length === 0 && r.status !== 'degraded' && commit) {
    s.appliedCommit = commit;
    s.appliedAt = at;
  }
  s.history.push({
    at: ctx.startedAt,
    commit,
    status: r.status,
    changed: r.changed,
    bytesFetched: ctx.bytesFetched,
    durationMs: Math.round(performance.now() - ctx.started),
    conflicts: r.conflicts.map((c) => c.model),
    errors: ctx.errors.map((e) => ({ code: e.code, message: e.message.slice(0, 2000), model: e.model })),
  });
  await writeState(ctx.store.layout, s);
}

async function applyRetention(ctx: PassContext): Promise<void> {
  const protect = new Map<string, Set<string>>();
  const add = (m: string, v: string): void => {
    protect.set(m, (protect.get(m) ?? new Set()).add(v));
  };
  for (const d of ctx.desired) add(d.model, d.version);
  for (const [m, v] of Object.entries(ctx.pins)) add(m, v);
  const report = await collectGarbage(ctx.store.layout, { keep: ctx.site!.retention.keep, protect });
  if (report.versionsRemoved.length > 0 || report.objectsRemoved > 0) {
    ctx.logger.info({ versions: report.versionsRemoved.map((v) => `${v.model}/${v.version}`), objects: report.objectsRemoved, bytesFreed: report.bytesFreed }, 'retention');
  }
}
