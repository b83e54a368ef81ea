/** The fetch step: plain blobs from git, LFS objects through the fetcher, every byte verified into the store. */
import * as fs from 'node:fs';
import { stat } from 'node:fs/promises';
import git from 'isomorphic-git';
import { ValidationError } from '../errors.ts';
import type { DeltaHints, LfsObject, ObjectFetcher } from '../lfs/types.ts';
import { MAX_CHUNK_INDEX_BYTES } from '../lfs/cdc.ts';
import { versionFilePath } from '../registry/layout.ts';
import { MAX_POINTER_SIZE } from '../registry/lfs-pointer.ts';
import { MIN_LIMIT_KBPS } from '../registry/schema.ts';
import { observeModel } from '../store/index.ts';
import { defaultFetcherFactory, type FetcherFactory } from './fetcher.ts';
import { formatBytes } from './format.ts';
import { gitObjectSize } from '../registry/git-object-size.ts';
import { loadValidated } from './load.ts';
import { reserveSpace } from './observe.ts';
import { MAX_PLAIN_BLOB_BYTES, type PassContext, type Step } from './pass-context.ts';
import { passError, type PassError } from './result.ts';

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

export const fetchObjects: Step = async (ctx) => {
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
        // objects.adopt fsyncs each verified file before it is used.
        durable: true,
        signal: ctx.signal,
        // A Retry-After that would outlast the pass is not waited for (the signal would cut it short anyway).
        deadline: ctx.opts.timeoutMs ? Date.parse(ctx.startedAt) + ctx.opts.timeoutMs : undefined,
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
      if (res.throttled) ctx.throttled = (ctx.throttled ?? 0) + res.throttled;
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
 * `previous`. Two at most. Each candidate's chunks come from the index the
 * site kept when it fetched that version (store/chunk-indexes.ts); a
 * candidate without one is read whole to find them.
 */
function deltaHints(
  ctx: PassContext,
  chunkIndexes: ReadonlyMap<string, LfsObject>,
  bases: ReadonlyMap<string, ReadonlyArray<{ model: string; name: string; version: string }>>,
): DeltaHints {
  const layout = ctx.store.layout;
  const kept = ctx.store.chunkIndexes;
  // Which held version's file each candidate is, for its kept index.
  const held = new Map<string, { model: string; version: string; name: string }>();
  return {
    chunkIndex: (obj) => chunkIndexes.get(obj.oid),
    async localCandidates(obj) {
      const out: string[] = [];
      for (const b of bases.get(obj.oid) ?? []) {
        const obs = await observeModel(layout, b.model);
        for (const v of [obs.current, obs.previous]) {
          if (v === undefined || v === b.version) continue;
          const path = layout.versionFile(b.model, v, b.name);
          if (!out.includes(path) && (await stat(path).then((st) => st.isFile(), () => false))) {
            out.push(path);
            held.set(path, { model: b.model, version: v, name: b.name });
          }
        }
      }
      return out.slice(0, 2);
    },
    async keptIndex(path) {
      const h = held.get(path);
      if (!h) return undefined;
      // The held version's manifest names the file's object; the version file must be a link to that very object.
      const f = (await loadValidated(ctx)).models.get(h.model)?.versions.get(h.version)?.manifest.files.find((x) => x.name === h.name);
      if (!f) return undefined;
      const [a, o] = await Promise.all([stat(path).catch(() => null), stat(layout.objectPath(f.sha256)).catch(() => null)]);
      if (!a || !o || a.ino !== o.ino || a.dev !== o.dev) return undefined;
      const bytes = await kept.read(f.sha256, MAX_CHUNK_INDEX_BYTES);
      return bytes ? { bytes, file: { oid: f.sha256, size: f.size } } : undefined;
    },
    keepIndex: (obj, bytes) => kept.keep(obj.oid, bytes),
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
    // A desired state reused from an older state.json may predate the floor: it holds here too.
    limitKbps: ctx.site?.bandwidth ? Math.max(MIN_LIMIT_KBPS, ctx.site.bandwidth.limit_kbps) : undefined,
    timeoutMs: ctx.opts.networkTimeoutMs,
    logger: ctx.logger,
  });
}
