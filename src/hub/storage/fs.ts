/**
 * LFS object bytes on disk (the default store): downloads (with single
 * ranges) and uploads that are hashed while they stream into `<data>/tmp/`
 * and only renamed into the repo's `lfs/objects/` once sha256 and size match.
 * A reader never sees a partial or wrong object. Objects sit in git-lfs's own
 * layout inside each bare repository, so the repo alone is a full registry.
 */
import { randomBytes } from 'node:crypto';
import { constants, createWriteStream } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isDiskFull } from '../../errors.ts';
import { fsyncDir } from '../../util/fsutil.ts';
import { SHA256_RE } from '../../util/hash.ts';
import { HttpError } from '../http-util.ts';
import { acceptsGzip, COMPRESS_MAX_BYTES, GzipCache, looksLikeText } from './compressed.ts';
import { parseRange } from '../range.ts';
import type { RepoStore } from '../repos.ts';
import type { ObjectStorage, ReceiveOptions, Received } from './index.ts';
import { UploadMeter, tooLarge, uploadAborted, uploadLimit } from './upload-check.ts';

const STREAM_CHUNK = 1 << 20;
/**
 * Downloads read the file in 2 MiB pieces into two buffers used in turn: one
 * is being sent while the next piece is read into the other, and a buffer is
 * refilled only once the socket has taken all of it (the write callback).
 * Reusing buffers matters: allocating a fresh 2 MiB buffer per piece made V8
 * run full collections of the hub's heap for the external memory, ~12% of
 * its CPU at 1 GiB/s.
 */
const SEND_CHUNK = 2 << 20;

async function sendRange(path: string, start: number, end: number, res: ServerResponse): Promise<void> {
  // Objects are regular files the hub wrote itself: a symlink in their place
  // (planted in the data dir) is not followed to whatever it points at.
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  // Each buffer's write callback releases it; a response that closes early releases them all.
  const pending = new Set<() => void>();
  const onClose = (): void => {
    for (const release of pending) release();
  };
  res.on('close', onClose);
  try {
    const stop = end + 1;
    const size = Math.min(SEND_CHUNK, stop - start);
    const buffers = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
    const released: Array<Promise<void>> = [Promise.resolve(), Promise.resolve()];
    let pos = start;
    // At most two pieces are in flight: that is the backpressure, so 'drain' is not needed.
    for (let turn = 0; pos < stop; turn ^= 1) {
      await released[turn];
      if (res.destroyed) throw prematureClose();
      const buf = buffers[turn]!;
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, stop - pos), pos);
      if (bytesRead === 0) throw new Error(`object ${path} ended at ${pos} bytes, before ${stop}`);
      pos += bytesRead;
      released[turn] = new Promise<void>((resolve) => {
        const release = (): void => {
          pending.delete(release);
          resolve();
        };
        pending.add(release);
        res.write(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead), release);
      });
    }
    await Promise.all(released);
    if (res.destroyed) throw prematureClose();
    // end()'s callback waits for 'finish', which never comes if the client
    // hangs up first: 'close' settles it too, or the file would stay open.
    await new Promise<void>((resolve) => {
      res.once('close', resolve);
      res.end(resolve);
    });
  } finally {
    res.off('close', onClose);
    await fh.close();
  }
}

/** The same error a stream pipeline gives when the client hangs up, so the server logs it as such. */
function prematureClose(): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error('client closed the connection during the download');
  err.code = 'ERR_STREAM_PREMATURE_CLOSE';
  return err;
}

export class FsObjects implements ObjectStorage {
  readonly description: string;
  private readonly gzipped = new GzipCache();

  constructor(private readonly repos: RepoStore) {
    this.description = `filesystem (${repos.reposDir}/<repo>.git/lfs/objects)`;
  }

  /** The hub serves these bytes itself. */
  async downloadUrl(): Promise<null> {
    return null;
  }

  async count(): Promise<number> {
    let n = 0;
    for (const repo of await readdir(this.repos.reposDir)) {
      const root = join(this.repos.reposDir, repo, 'lfs', 'objects');
      for (const a of await readdir(root).catch(() => [])) {
        for (const b of await readdir(join(root, a)).catch(() => [])) {
          n += (await readdir(join(root, a, b)).catch(() => [])).filter((f) => SHA256_RE.test(f)).length;
        }
      }
    }
    return n;
  }

  /** The stored size of an object, or null when the repo does not have it. */
  async size(repo: string, oid: string): Promise<number | null> {
    try {
      // lstat: a symlink is not an object (see sendRange).
      const st = await lstat(this.repos.objectPath(repo, oid));
      return st.isFile() ? st.size : null;
    } catch {
      return null;
    }
  }

  /** Answer GET/HEAD for an object, honouring one `Range`. Returns the body bytes sent. */
  async serve(req: IncomingMessage, res: ServerResponse, repo: string, oid: string): Promise<number> {
    const path = this.repos.objectPath(repo, oid);
    const size = await this.size(repo, oid);
    if (size === null) throw new HttpError(404, 'ObjectNotFound', `object ${oid} not found`);
    const etag = `"${oid}"`;
    const ifRange = req.headers['if-range'];
    const range = ifRange === undefined || ifRange === etag ? parseRange(req.headers.range, size) : ({ kind: 'full' } as const);
    const common = {
      'Content-Type': 'application/octet-stream',
      'Accept-Ranges': 'bytes',
      ETag: etag,
      // Content-addressed: these bytes never change under this URL.
      'Cache-Control': 'private, max-age=31536000, immutable',
      // Small text objects are sent gzip-compressed to clients that ask (compressed.ts).
      Vary: 'Accept-Encoding',
    };
    if (range.kind === 'unsatisfiable') {
      throw new HttpError(416, 'RangeNotSatisfiable', `range not satisfiable for an object of ${size} bytes`, { 'Content-Range': `bytes */${size}` });
    }
    if (range.kind === 'full' && req.method === 'GET' && size > 0 && size <= COMPRESS_MAX_BYTES && acceptsGzip(req)) {
      const sent = await this.sendSmall(path, oid, size, res, common);
      if (sent !== null) return sent;
    }
    const start = range.kind === 'partial' ? range.start : 0;
    const end = range.kind === 'partial' ? range.end : size - 1;
    const length = size === 0 ? 0 : end - start + 1;
    if (range.kind === 'partial') res.writeHead(206, { ...common, 'Content-Length': length, 'Content-Range': `bytes ${start}-${end}/${size}` });
    else res.writeHead(200, { ...common, 'Content-Length': size });
    if (req.method === 'HEAD' || length === 0) {
      res.end();
      return 0;
    }
    await sendRange(path, start, end, res);
    return length;
  }

  /**
   * A small object read whole and, when it is text that compresses, sent with
   * Content-Encoding: gzip. Null when it is not text: the caller streams it as usual.
   */
  private async sendSmall(path: string, oid: string, size: number, res: ServerResponse, common: Record<string, string>): Promise<number | null> {
    const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    let body: Buffer;
    try {
      const head = Buffer.allocUnsafe(Math.min(size, 4096));
      const { bytesRead } = await fh.read(head, 0, head.length, 0);
      if (!looksLikeText(head.subarray(0, bytesRead))) return null;
      body = await fh.readFile();
    } finally {
      await fh.close();
    }
    if (body.length !== size) throw new Error(`object ${path} is ${body.length} bytes, not ${size}`);
    const packed = await this.gzipped.get(oid, body);
    const out = packed ?? body;
    res.writeHead(200, { ...common, ...(packed ? { 'Content-Encoding': 'gzip', ETag: `"${oid}.gz"` } : {}), 'Content-Length': out.length });
    await new Promise<void>((resolve) => {
      res.once('close', resolve);
      res.end(out, resolve);
    });
    return out.length;
  }

  /**
   * Stream an upload to a temp file while hashing it; keep it only if it
   * hashes to `oid` (and has `expectedSize` bytes, when known). An upload of
   * an object already stored is verified the same way and changes nothing.
   */
  async receive(req: IncomingMessage, repo: string, oid: string, opts: ReceiveOptions): Promise<Received> {
    const limit = uploadLimit(req, opts);
    const tmp = join(this.repos.tmpDir, `lfs-${oid.slice(0, 16)}-${randomBytes(6).toString('hex')}.part`);
    const meter = new UploadMeter(limit);
    let over = false;
    const hasher = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        try {
          meter.take(chunk);
        } catch (err) {
          over = true;
          cb(err as Error);
          return;
        }
        cb(null, chunk);
      },
    });
    try {
      try {
        await pipeline(req, hasher, createWriteStream(tmp, { flags: 'wx', highWaterMark: STREAM_CHUNK }));
      } catch (err) {
        if (over) throw tooLarge(limit);
        if (isDiskFull(err)) throw new HttpError(507, 'InsufficientStorage', 'the hub is out of disk space');
        throw uploadAborted(err);
      }
      // Every byte is in: from here on the hub is the slow party (fsync of a
      // big object on a slow disk), so the client's idle timeout must not cut it.
      req.socket.setTimeout(0);
      meter.verify(oid, opts.expectedSize);
      const fh = await open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      const dest = this.repos.objectPath(repo, oid);
      await mkdir(dirname(dest), { recursive: true });
      const created = (await this.size(repo, oid)) === null;
      // Same content either way, so a racing upload of the same oid is harmless.
      await rename(tmp, dest);
      await fsyncDir(dirname(dest));
      return { size: meter.size, created };
    } finally {
      await rm(tmp, { force: true }).catch(() => {});
    }
  }
}
