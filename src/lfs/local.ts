/**
 * An ObjectFetcher for a registry that is a local repository (a checkout or a
 * bare repo): objects come from its git-lfs cache
 * (`<gitdir>/lfs/objects/aa/bb/<oid>`), hashed while they are copied, so a
 * corrupt cache is caught like a corrupt download. Objects the cache lacks
 * (or holds corrupt) go to the fallback fetcher, typically the HTTP one for
 * the repository's LFS server.
 *
 * Copy, not hard link: the store makes its objects read-only and owns them;
 * sharing an inode with git-lfs's cache would let either side change the other.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, promises as fsp, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChecksumError, ConfigError, isDiskFull, ModelsyncError, NotFoundError, StoreError } from '../errors.ts';
import { silentLogger, type Logger } from '../log.ts';
import { SHA256_RE } from '../util/hash.ts';
import { removePart } from './download.ts';
import { GitConfig } from './gitconfig.ts';
import { runPool } from './pool.ts';
import { isAbort } from './retry.ts';
import type { FetchOptions, FetchResult, LfsObject, ObjectFetcher } from './types.ts';

export interface LocalFetcherOptions {
  /** The repository's git directory (`.git` of a checkout, or the bare repo itself). */
  gitdir: string;
  /** Where to get objects the cache does not have. */
  fallback?: ObjectFetcher;
  logger?: Logger;
  /** Copies in parallel (default 2: local disks gain little from more). */
  concurrency?: number;
}

export class LocalFetcher implements ObjectFetcher {
  readonly description: string;
  readonly objectsDir: string;
  private readonly fallback: ObjectFetcher | undefined;
  private readonly logger: Logger;
  private readonly concurrency: number;

  constructor(opts: LocalFetcherOptions) {
    this.objectsDir = lfsObjectsDir(opts.gitdir);
    this.fallback = opts.fallback;
    this.logger = opts.logger ?? silentLogger;
    this.concurrency = Math.max(1, Math.floor(opts.concurrency ?? 2));
    this.description = `git-lfs cache ${this.objectsDir}${opts.fallback ? `, then ${opts.fallback.description}` : ''}`;
  }

  async fetch(objects: readonly LfsObject[], options: FetchOptions): Promise<FetchResult> {
    const result: FetchResult = { fetched: [], bytesTransferred: 0, bytesByOid: {}, failed: [] };
    const seen = new Set<string>();
    const todo = objects.filter((o) => !seen.has(o.oid) && seen.add(o.oid));
    const missing: LfsObject[] = [];
    await fsp.mkdir(options.tmpDir, { recursive: true }).catch((err: unknown) => {
      throw new StoreError(`cannot create ${options.tmpDir}: ${(err as Error).message}`, { dir: options.tmpDir }, err);
    });

    await runPool(
      todo,
      this.concurrency,
      async (obj) => {
        if (!SHA256_RE.test(obj.oid)) {
          result.failed.push({ obj, error: new ModelsyncError('InvalidObject', `not a sha256 oid: ${JSON.stringify(String(obj.oid).slice(0, 80))}`, { retry: 'stalling' }) });
          return;
        }
        const src = join(this.objectsDir, obj.oid.slice(0, 2), obj.oid.slice(2, 4), obj.oid);
        const part = join(options.tmpDir, `${obj.oid}.part`);
        let size: number;
        try {
          size = (await fsp.stat(src)).size;
        } catch {
          missing.push(obj);
          return;
        }
        if (size !== obj.size) {
          this.logger.warn({ oid: obj.oid, file: src, size, expected: obj.size }, 'git-lfs cache object has the wrong size; fetching it elsewhere');
          missing.push(obj);
          return;
        }
        try {
          // Not `+= await`: that would read the total before the await and lose concurrent copies.
          const copied = await copyVerified(src, part, obj, options);
          result.bytesTransferred += copied;
          result.bytesByOid![obj.oid] = copied;
        } catch (err) {
          if (options.signal?.aborted || isAbort(err)) throw err;
          if (err instanceof ChecksumError) {
            this.logger.warn({ oid: obj.oid, file: src }, 'git-lfs cache object is corrupt; fetching it elsewhere');
            missing.push(obj);
          } else {
            result.failed.push({ obj, error: err instanceof ModelsyncError ? err : new StoreError(`copying ${src} failed: ${(err as Error).message}`, { file: src }, err) });
          }
          return;
        }
        try {
          await options.onVerified(obj, part);
          result.fetched.push(obj);
        } catch (err) {
          if (options.signal?.aborted || isAbort(err)) throw err;
          result.failed.push({ obj, error: err instanceof ModelsyncError ? err : new StoreError(`storing ${obj.oid} failed: ${(err as Error).message}`, { oid: obj.oid }, err) });
        }
      },
      options.signal,
    ).catch((err: unknown) => {
      throw options.signal?.aborted ? options.signal.reason : err;
    });

    if (missing.length > 0) {
      if (this.fallback) {
        const more = await this.fallback.fetch(missing, options);
        result.fetched.push(...more.fetched);
        result.failed.push(...more.failed);
        result.bytesTransferred += more.bytesTransferred;
        // A fallback that does not say per object makes the whole answer unattributed.
        result.bytesByOid = more.bytesByOid && result.bytesByOid ? { ...result.bytesByOid, ...more.bytesByOid } : undefined;
      } else {
        for (const obj of missing) {
          result.failed.push({
            obj,
            error: new NotFoundError(`object ${obj.oid} is not in ${this.objectsDir} and the registry has no LFS server to fetch it from`, { oid: obj.oid, dir: this.objectsDir }),
          });
        }
      }
    }
    return result;
  }

  close(): void {
    if (this.fallback) closeFetcher(this.fallback);
  }
}

/** Close the fallback's idle keep-alive connections, if it has any. */
export function closeFetcher(fetcher: ObjectFetcher): void {
  (fetcher as { close?: () => void }).close?.();
}

/** Copy `src` to `part` hashing on the way; ChecksumError (and no part) when it is not `obj`. */
async function copyVerified(src: string, part: string, obj: LfsObject, options: FetchOptions): Promise<number> {
  const hash = createHash('sha256');
  let bytes = 0;
  const meter = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      bytes += chunk.length;
      hash.update(chunk);
      options.onProgress?.({ oid: obj.oid, bytes, size: obj.size });
      cb(null, chunk);
    },
  });
  let diskError: unknown;
  const out = createWriteStream(part, { flags: 'w', highWaterMark: 1 << 20 });
  out.on('error', (e) => (diskError ??= e));
  try {
    await pipeline(createReadStream(src, { highWaterMark: 1 << 20 }), meter, out, { signal: options.signal });
  } catch (err) {
    await removePart(part);
    if (diskError !== undefined) {
      const full = isDiskFull(diskError);
      throw new StoreError(`${full ? 'disk full' : 'cannot write'} while copying ${obj.oid} to ${part}: ${(diskError as Error).message}`, { file: part, diskFull: full }, diskError);
    }
    throw err;
  }
  const digest = hash.digest('hex');
  if (digest !== obj.oid || bytes !== obj.size) {
    await removePart(part);
    throw new ChecksumError(`${src} hashes to ${digest}, expected ${obj.oid}`, { oid: obj.oid, actual: digest, file: src, actualSize: bytes, expectedSize: obj.size });
  }
  return bytes;
}

/**
 * The git directory of a checkout (`.git`, or the directory a `.git` file
 * points to) or of a bare repository (the path itself).
 */
export function resolveGitDir(repo: string): string {
  const dotgit = join(repo, '.git');
  if (existsSync(dotgit)) {
    if (statSync(dotgit).isDirectory()) return dotgit;
    const m = /^gitdir:\s*(.+?)\s*$/m.exec(readFileSync(dotgit, 'utf8'));
    if (m) return isAbsolute(m[1]!) ? m[1]! : resolve(repo, m[1]!);
  }
  if (existsSync(join(repo, 'HEAD')) && existsSync(join(repo, 'objects'))) return repo;
  throw new ConfigError(`${repo} is not a git repository (no .git, and not a bare repository)`, { path: repo });
}

/** The repository's git config text, or undefined. */
export function readGitConfig(gitdir: string): string | undefined {
  try {
    return readFileSync(join(commonDir(gitdir), 'config'), 'utf8');
  } catch {
    return undefined;
  }
}

/** git-lfs keeps objects in the common dir (shared by worktrees), under `lfs.storage` when set. */
export function lfsObjectsDir(gitdir: string): string {
  const common = commonDir(gitdir);
  const text = readGitConfig(gitdir);
  const storage = text ? GitConfig.parse(text).get('lfs.storage') : undefined;
  if (storage) return join(isAbsolute(storage) ? storage : resolve(common, storage), 'objects');
  return join(common, 'lfs', 'objects');
}

function commonDir(gitdir: string): string {
  try {
    const rel = readFileSync(join(gitdir, 'commondir'), 'utf8').trim();
    return isAbsolute(rel) ? rel : resolve(gitdir, rel);
  } catch {
    return gitdir;
  }
}
