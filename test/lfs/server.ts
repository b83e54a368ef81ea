/**
 * A small but real Git LFS server for tests (and the download benchmark): a
 * node http server on 127.0.0.1:0 speaking the batch API, basic transfers
 * with Range, uploads hashed while streaming, and verify. A second server on
 * another port plays presigned-URL storage (S3-like): it wants its own header
 * and must never see our Authorization. Faults are injected per object.
 *
 * Options reproduce what hosts we did not write do (docs/lfs.md, "Other
 * hosts"): a Basic user name that must match (GitLab deploy tokens,
 * Bitbucket), a 206 that runs to the end of the object whatever range was
 * asked for, a 200 instead of a 206, `expires_at` instead of `expires_in`,
 * presigned hrefs that refuse any Authorization header (S3), redirects from
 * the LFS server to storage. With `gitRoot`, Git smart HTTP is served by
 * stock `git http-backend` from that directory, behind the same credentials.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp, statSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runHttpBackend } from '../../src/hub/git-http.ts';
import { silentLogger } from '../../src/log.ts';

export interface StoredObject {
  oid: string;
  size: number;
  /** Small objects live in memory, big ones in a file. */
  data?: Buffer;
  file?: string;
}

export type DownloadFault =
  | { status: number; retryAfter?: string; body?: string }
  /** Send headers for the whole body, then this many bytes, then cut the connection. */
  | { dropAfter: number }
  /** Send this many bytes, then go silent (for idle timeouts). */
  | { stallAfter: number }
  /** Answer 200 with the whole object even when a Range was asked for. */
  | { ignoreRange: true }
  /** Redirect (302) to the storage server with a presigned-style `?sig=` URL. */
  | { redirectToStorage: true }
  /** Answer a Range with a 206 that starts at this offset instead (a cache serving from its own block boundary). */
  | { startAt: number };

export interface RequestRecord {
  server: 'lfs' | 'storage';
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  status?: number;
  /** Object bytes the server handed to the socket for this request (downloads). */
  bytes?: number;
}

export interface LfsTestServerOptions {
  /** When set, the batch API and same-origin transfers need it (Basic password or Bearer). */
  token?: string;
  /** Where download/upload hrefs point: this server, or the separate storage server. */
  hrefs?: 'same' | 'storage' | 'presigned';
  /** `expires_in` to give for an object's actions; hrefs really stop working after it. */
  expiresIn?: (oid: string, batchNumber: number) => number | undefined;
  /** Repo path: `/<repo>.git/info/lfs`. */
  repo?: string;
  /** With a token: the Basic user name that must come with it (403 otherwise, as GitLab answers a wrong user). */
  username?: string;
  /** How Range requests are answered: exactly (default), 206 from the asked start to the end of the object, or 200 with everything. */
  ranges?: 'exact' | 'to-end' | 'ignore';
  /** Say when actions expire with `expires_at` (RFC 3339) instead of `expires_in`. */
  expiresAt?: boolean;
  /** Download hrefs on the LFS server that redirect (with this status) to a presigned storage URL. */
  redirectStatus?: 301 | 302 | 307;
  /** A directory holding bare repositories, served over Git smart HTTP by `git http-backend`. */
  gitRoot?: string;
}

export class LfsTestServer {
  readonly objects = new Map<string, StoredObject>();
  readonly requests: RequestRecord[] = [];
  readonly batches: Array<{ operation: string; oids: string[]; headers: IncomingMessage['headers'] }> = [];
  /** Per-object faults, consumed one per download request. */
  readonly faults = new Map<string, DownloadFault[]>();
  /** Faults for the next batch requests, consumed in order. */
  readonly batchFaults: Array<{ status: number; retryAfter?: string }> = [];
  /** Per-object batch errors (`{code, message}`) instead of actions. */
  readonly objectErrors = new Map<string, { code: number; message: string }>();
  /** Objects whose bytes are served with one byte flipped (the middle one). */
  readonly corrupt = new Set<string>();
  /** Objects served with the byte at this offset flipped. */
  readonly corruptAt = new Map<string, number>();
  /** Header the storage server requires on every request. */
  readonly storageHeader = { name: 'x-storage-signature', value: randomBytes(8).toString('hex') };

  private lfs!: http.Server;
  private storage!: http.Server;
  private lfsOrigin = '';
  private storageOrigin = '';
  private readonly dir: string;
  private batchCount = 0;

  private constructor(readonly options: LfsTestServerOptions) {
    this.dir = join(tmpdir(), `lfs-test-server-${process.pid}-${randomBytes(4).toString('hex')}`);
  }

  static async start(options: LfsTestServerOptions = {}): Promise<LfsTestServer> {
    const s = new LfsTestServer(options);
    await fsp.mkdir(s.dir, { recursive: true });
    s.lfs = http.createServer((req, res) => void s.handle('lfs', req, res));
    s.storage = http.createServer((req, res) => void s.handle('storage', req, res));
    s.lfsOrigin = await listen(s.lfs);
    s.storageOrigin = await listen(s.storage);
    return s;
  }

  get repo(): string {
    return this.options.repo ?? 'repo';
  }
  /** The git remote URL a client would be configured with. */
  get remoteUrl(): string {
    return `${this.lfsOrigin}/${this.repo}.git`;
  }
  get lfsUrl(): string {
    return `${this.remoteUrl}/info/lfs`;
  }
  get storageUrl(): string {
    return this.storageOrigin;
  }

  /** Store an object and return its pointer fields. */
  add(content: Buffer | string): { oid: string; size: number } {
    const data = Buffer.from(content);
    const oid = createHash('sha256').update(data).digest('hex');
    this.objects.set(oid, { oid, size: data.length, data });
    return { oid, size: data.length };
  }

  /** Serve a file already on disk (benchmarks) under its known oid. */
  addFile(oid: string, file: string): { oid: string; size: number } {
    const size = statSync(file).size;
    this.objects.set(oid, { oid, size, file });
    return { oid, size };
  }

  fault(oid: string, ...faults: DownloadFault[]): void {
    this.faults.set(oid, [...(this.faults.get(oid) ?? []), ...faults]);
  }

  /** Object bytes sent to clients, all downloads together. */
  get bytesSent(): number {
    return this.requests.reduce((n, r) => n + (r.bytes ?? 0), 0);
  }

  downloadsOf(oid: string): RequestRecord[] {
    return this.requests.filter((r) => r.method === 'GET' && r.path.includes(oid));
  }

  async close(): Promise<void> {
    for (const s of [this.lfs, this.storage]) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
    await fsp.rm(this.dir, { recursive: true, force: true });
  }

  private async handle(server: 'lfs' | 'storage', req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const rec: RequestRecord = { server, method: req.method ?? '', path: url.pathname + url.search, headers: req.headers };
    this.requests.push(rec);
    res.on('close', () => (rec.status = res.statusCode));
    try {
      const base = `/${this.repo}.git/info/lfs`;
      if (server === 'lfs' && req.method === 'POST' && url.pathname === `${base}/objects/batch`) return await this.batch(req, res);
      if (server === 'lfs' && req.method === 'POST' && url.pathname === `${base}/verify`) return await this.verify(req, res);
      if (server === 'lfs' && this.options.gitRoot && url.pathname.startsWith(`/${this.repo}.git/`) && !url.pathname.startsWith(base)) return await this.git(req, res, url);
      const m = /\/objects\/([0-9a-f]{64})$/.exec(url.pathname);
      if (m && (server === 'storage' || url.pathname.startsWith(base))) {
        if (!this.transferAllowed(server, req, url, res)) return;
        if (req.method === 'GET') return await this.download(m[1]!, req, res, rec);
        if (req.method === 'PUT') return await this.upload(m[1]!, req, res);
      }
      json(res, 404, { message: `no route for ${req.method} ${url.pathname}` });
    } catch (err) {
      if (!res.headersSent) json(res, 500, { message: (err as Error).message });
      else res.destroy();
    }
  }

  /** 'ok', or the status a host answers: 401 without (or with a wrong) token, 403 for the right token with the wrong user. */
  private access(req: IncomingMessage): 'ok' | 401 | 403 {
    const token = this.options.token;
    if (!token) return 'ok';
    // GitLab also takes the token in the query string (`?private_token=`).
    if (new URL(req.url ?? '/', 'http://x').searchParams.get('private_token') === token) return 'ok';
    const h = req.headers.authorization ?? '';
    if (h === `Bearer ${token}` && this.options.username === undefined) return 'ok';
    const m = /^Basic (.+)$/.exec(h);
    if (!m) return 401;
    const decoded = Buffer.from(m[1]!, 'base64').toString();
    if (decoded.slice(decoded.indexOf(':') + 1) !== token) return 401;
    if (this.options.username !== undefined && decoded.slice(0, decoded.indexOf(':')) !== this.options.username) return 403;
    return 'ok';
  }

  private authorized(req: IncomingMessage): boolean {
    return this.access(req) === 'ok';
  }

  private refuse(req: IncomingMessage, res: ServerResponse): void {
    const status = this.access(req);
    if (status === 403) return json(res, 403, { message: 'HTTP Basic: Access denied (user name does not match the token)' });
    res.setHeader('www-authenticate', 'Basic realm="test host"');
    json(res, 401, { message: 'credentials needed' });
  }

  /** Git smart HTTP by stock `git http-backend`, behind the same credentials as the LFS API. */
  private async git(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (!this.authorized(req)) return this.refuse(req, res);
    await runHttpBackend(req, res, { projectRoot: this.options.gitRoot!, pathInfo: url.pathname, query: url.search.slice(1), remoteUser: 'test', maxBodyBytes: 64 << 20, logger: silentLogger });
  }

  private transferAllowed(server: 'lfs' | 'storage', req: IncomingMessage, url: URL, res: ServerResponse): boolean {
    const exp = url.searchParams.get('exp');
    if (exp !== null && Date.now() > Number(exp)) {
      json(res, 403, { message: 'this link has expired' });
      return false;
    }
    if (server === 'storage') {
      // S3 refuses a request that carries a second credential besides the presigned one.
      if (req.headers.authorization !== undefined) {
        json(res, 400, { message: 'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified' });
        return false;
      }
      // S3-style: the signature may come as a header or in the query string.
      if (req.headers[this.storageHeader.name] !== this.storageHeader.value && url.searchParams.get('sig') !== this.storageHeader.value) {
        json(res, 403, { message: 'missing or wrong storage signature' });
        return false;
      }
      return true;
    }
    if (!this.authorized(req)) {
      this.refuse(req, res);
      return false;
    }
    return true;
  }

  private async batch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = JSON.parse((await readAll(req)).toString()) as { operation: string; transfers?: string[]; objects: Array<{ oid: string; size: number }> };
    this.batches.push({ operation: body.operation, oids: body.objects.map((o) => o.oid), headers: req.headers });
    const batchNumber = ++this.batchCount;
    const fault = this.batchFaults.shift();
    if (fault) {
      if (fault.retryAfter) res.setHeader('retry-after', fault.retryAfter);
      return json(res, fault.status, { message: `injected batch failure ${fault.status}` });
    }
    if (!this.authorized(req)) return this.refuse(req, res);
    if (req.headers['content-type'] !== 'application/vnd.git-lfs+json') return json(res, 415, { message: 'wrong content type' });
    const hrefBase = this.options.hrefs === 'storage' || this.options.hrefs === 'presigned' ? this.storageOrigin : `${this.lfsOrigin}/${this.repo}.git/info/lfs`;
    const objects = body.objects.map((o) => {
      const err = this.objectErrors.get(o.oid);
      if (err) return { oid: o.oid, size: o.size, error: err };
      const have = this.objects.get(o.oid);
      const expiresIn = this.options.expiresIn?.(o.oid, batchNumber);
      const params = new URLSearchParams();
      if (expiresIn !== undefined) params.set('exp', String(Date.now() + expiresIn * 1000));
      if (this.options.hrefs === 'presigned') params.set('sig', this.storageHeader.value);
      const query = params.size ? `?${params}` : '';
      const header = this.options.hrefs === 'storage' ? { [this.storageHeader.name]: this.storageHeader.value } : {};
      const expiry =
        expiresIn === undefined ? {} : this.options.expiresAt ? { expires_at: new Date(Date.now() + expiresIn * 1000).toISOString() } : { expires_in: expiresIn };
      // Presigned S3 URLs come with no header map at all.
      const action = { href: `${hrefBase}/objects/${o.oid}${query}`, ...(this.options.hrefs === 'presigned' ? {} : { header }), ...expiry };
      if (body.operation === 'download') {
        if (!have) return { oid: o.oid, size: o.size, error: { code: 404, message: 'Object does not exist' } };
        return { oid: o.oid, size: have.size, authenticated: true, actions: { download: action } };
      }
      if (have) return { oid: o.oid, size: have.size };
      return {
        oid: o.oid,
        size: o.size,
        actions: { upload: action, verify: { href: `${this.lfsOrigin}/${this.repo}.git/info/lfs/verify`, header: {} } },
      };
    });
    json(res, 200, { transfer: 'basic', objects, hash_algo: 'sha256' }, 'application/vnd.git-lfs+json');
  }

  private async download(oid: string, req: IncomingMessage, res: ServerResponse, rec: RequestRecord): Promise<void> {
    const obj = this.objects.get(oid);
    if (!obj) return json(res, 404, { message: 'not found' });
    const queue = this.faults.get(oid);
    const fault = queue?.shift();
    if (this.options.redirectStatus && new URL(req.url ?? '/', 'http://x').pathname.startsWith(`/${this.repo}.git/`) && !(fault && 'status' in fault)) {
      res.writeHead(this.options.redirectStatus, { location: `${this.storageOrigin}/objects/${oid}?sig=${this.storageHeader.value}` });
      return void res.end();
    }
    if (fault && 'redirectToStorage' in fault) {
      res.writeHead(302, { location: `${this.storageOrigin}/objects/${oid}?sig=${this.storageHeader.value}` });
      return void res.end();
    }
    if (fault && 'status' in fault) {
      if (fault.retryAfter) res.setHeader('retry-after', fault.retryAfter);
      return json(res, fault.status, { message: fault.body ?? `injected ${fault.status}` });
    }
    let start = 0;
    let last = obj.size - 1;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range && !(fault && 'ignoreRange' in fault) && this.options.ranges !== 'ignore') {
      start = fault && 'startAt' in fault ? fault.startAt : Number(range[1]);
      if (range[2] && this.options.ranges !== 'to-end') last = Math.min(last, Number(range[2]));
      if (start >= obj.size || last < start) {
        res.writeHead(416, { 'content-range': `bytes */${obj.size}` });
        return void res.end();
      }
      res.writeHead(206, { 'content-length': last - start + 1, 'content-range': `bytes ${start}-${last}/${obj.size}`, 'content-type': 'application/octet-stream' });
    } else {
      res.writeHead(200, { 'content-length': obj.size, 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' });
    }
    const source = obj.data ? bufferStream(obj.data.subarray(0, last + 1), start) : createReadStream(obj.file!, { start, end: last, highWaterMark: 1 << 20 });
    const limit = fault && 'dropAfter' in fault ? fault.dropAfter : fault && 'stallAfter' in fault ? fault.stallAfter : Infinity;
    let sent = 0;
    const flip = this.corruptAt.get(oid) ?? (this.corrupt.has(oid) ? obj.size >> 1 : -1);
    for await (const chunk of source) {
      let buf = chunk as Buffer;
      if (flip >= 0 && start + sent <= flip && start + sent + buf.length > flip) {
        buf = Buffer.from(buf);
        buf[flip - (start + sent)]! ^= 0xff;
      }
      if (sent + buf.length >= limit) {
        const cut = limit - sent;
        if (cut > 0) await write(res, buf.subarray(0, cut));
        if (fault && 'dropAfter' in fault) {
          // Let the bytes leave before the cut, so the client really has a prefix to resume from.
          await new Promise((r) => setTimeout(r, 20));
          res.socket?.destroy();
        }
        return; // stall: leave the response open
      }
      sent += buf.length;
      rec.bytes = sent;
        if (!(await write(res, buf))) return;
    }
    res.end();
  }

  private async upload(oid: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const file = join(this.dir, `${oid}.${randomBytes(4).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    const out = createWriteStream(file);
    for await (const chunk of req) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
    if (hash.digest('hex') !== oid) {
      await fsp.rm(file, { force: true });
      return json(res, 422, { message: 'content does not hash to the oid' });
    }
    this.objects.set(oid, { oid, size, file });
    res.writeHead(200).end();
  }

  private async verify(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.authorized(req)) return json(res, 401, { message: 'credentials needed' });
    const body = JSON.parse((await readAll(req)).toString()) as { oid: string; size: number };
    const have = this.objects.get(body.oid);
    if (!have || have.size !== body.size) return json(res, 404, { message: 'object not stored' });
    json(res, 200, { message: 'ok' }, 'application/vnd.git-lfs+json');
  }
}

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

function json(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function* bufferStream(data: Buffer, start: number): Generator<Buffer> {
  for (let i = start; i < data.length; i += 64 * 1024) yield data.subarray(i, Math.min(i + 64 * 1024, data.length));
}

/** Write with backpressure; false when the client went away. */
function write(res: ServerResponse, buf: Buffer): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  if (res.write(buf)) return Promise.resolve(true);
  return new Promise((r) => {
    const done = (ok: boolean) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      r(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}
