/**
 * The Git LFS API: batch, basic transfer (download with Range, upload hashed
 * while streaming), verify, and the locking stubs git-lfs probes for.
 */
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../log.ts';
import type { ActionTokens } from './auth.ts';
import type { Gate } from './gate.ts';
import { HttpError, JSON_TYPE, LFS_TYPE, readJsonBody, requireMediaType, sendJson } from './http-util.ts';
import { parseBatchRequest, planBatch, type BatchAction } from './lfs-batch.ts';
import type { HubLimits } from './limits.ts';
import type { RepoStore } from './repos.ts';
import type { RequestContext } from './request.ts';
import type { ObjectStorage } from './storage/index.ts';

export interface LfsRoutesDeps {
  repos: RepoStore;
  objects: ObjectStorage;
  gate: Gate;
  actions: ActionTokens;
  limits: HubLimits;
  logger: Logger;
  hasTokens: () => boolean;
  /** The base URL hrefs are built on, as the client reached the hub. */
  publicBase: (req: IncomingMessage) => string;
  /** A new object was stored (not one the hub had). */
  onStored: (size: number) => void;
  countRejected: (reason: string) => void;
}

export class LfsRoutes {
  constructor(private readonly d: LfsRoutesDeps) {}

  async batch(ctx: RequestContext, repo: string): Promise<void> {
    // Read and check the request before anything else happens, so garbage changes nothing.
    this.d.gate.identify(ctx);
    requireMediaType(ctx.req, [LFS_TYPE, JSON_TYPE]);
    const request = parseBatchRequest(await readJsonBody(ctx.req, this.d.limits.batchBodyBytes));
    const upload = request.operation === 'upload';
    const who = this.d.gate.authorize(ctx, upload ? 'publisher' : 'site');
    if (upload) {
      if (await this.d.repos.ensure(repo)) this.d.logger.info({ repo, who: who.name }, 'repository created by LFS upload');
    } else if (!(await this.d.repos.exists(repo))) {
      throw new HttpError(404, 'RepoNotFound', `repository ${repo} not found`);
    }
    const base = `${this.d.publicBase(ctx.req)}/${repo}.git/info/lfs/objects`;
    const ttl = this.d.limits.actionTtlSeconds;
    const action = async (oid: string, op: 'download' | 'upload' | 'verify', size: number): Promise<BatchAction> => {
      // A store with URLs of its own (a presigned S3 GET) serves downloads: the signature is in the
      // URL, so no header, and the hub's credentials never go to the store's host.
      const direct = op === 'download' ? await this.d.objects.downloadUrl(repo, oid, ttl) : null;
      if (direct !== null) return { href: direct, expires_in: ttl };
      const a: BatchAction = { href: op === 'verify' ? `${base}/${oid}/verify` : `${base}/${oid}`, expires_in: ttl };
      // An upload grant carries the declared size: the PUT must match it, not merely the hub's object limit.
      const grant = op === 'download' ? { repo, oid, op } : { repo, oid, op: 'upload' as const, size };
      if (this.d.hasTokens()) a.header = { Authorization: `Bearer ${this.d.actions.mint(grant, ttl)}` };
      return a;
    };
    const response = await planBatch(request, {
      storedSize: (oid) => this.d.objects.size(repo, oid),
      action,
      maxObjectBytes: this.d.limits.objectBytes,
    });
    sendJson(ctx.res, 200, response, LFS_TYPE);
  }

  async download(ctx: RequestContext, repo: string, oid: string): Promise<void> {
    this.d.gate.authorizeObject(ctx, repo, oid, 'download');
    await this.d.objects.serve(ctx.req, ctx.res, repo, oid);
  }

  async upload(ctx: RequestContext, repo: string, oid: string): Promise<void> {
    // receive() may destroy the request (an oversized chunked body), which
    // detaches req.socket: keep the socket to restore its idle timeout.
    const sock = ctx.req.socket;
    const grant = this.d.gate.authorizeObject(ctx, repo, oid, 'upload');
    if (!(await this.d.repos.exists(repo))) throw new HttpError(404, 'RepoNotFound', `repository ${repo} not found; start with a batch request`);
    let stored;
    try {
      stored = await this.d.objects.receive(ctx.req, repo, oid, { maxBytes: this.d.limits.objectBytes, expectedSize: grant.size });
    } catch (err) {
      if (err instanceof HttpError) {
        this.d.countRejected(err.code);
        this.d.logger.warn({ repo, oid, who: ctx.who?.name, reason: err.code, message: err.message }, 'LFS upload rejected');
      }
      throw err;
    } finally {
      // receive() lifts the idle timeout once the body is in (its fsync is the hub's time, not the client's);
      // the next request on this connection gets it back.
      if (!sock.destroyed) sock.setTimeout(this.d.limits.idleTimeoutMs);
    }
    if (stored.created) this.d.onStored(stored.size);
    this.d.logger.info({ repo, oid, size: stored.size, created: stored.created, who: ctx.who?.name }, 'LFS object stored');
    ctx.res.writeHead(200, { 'Content-Length': 0 });
    ctx.res.end();
  }

  async verify(ctx: RequestContext, repo: string, oid: string): Promise<void> {
    this.d.gate.authorizeObject(ctx, repo, oid, 'upload');
    requireMediaType(ctx.req, [LFS_TYPE, JSON_TYPE]);
    const body = (await readJsonBody(ctx.req, this.d.limits.smallJsonBytes)) as { oid?: unknown; size?: unknown } | null;
    if (!body || typeof body !== 'object' || body.oid !== oid || typeof body.size !== 'number') {
      throw new HttpError(422, 'InvalidVerifyRequest', 'verify body must be {"oid": <the oid in the URL>, "size": <bytes>}');
    }
    const size = await this.d.objects.size(repo, oid);
    if (size === null) throw new HttpError(404, 'ObjectNotFound', `object ${oid} not found`);
    if (size !== body.size) throw new HttpError(422, 'SizeMismatch', `the hub has ${size} bytes for ${oid}, not ${body.size}`);
    sendJson(ctx.res, 200, { oid, size }, LFS_TYPE);
  }

  /**
   * The hub does not implement file locking. A 501 on locks/verify is what
   * git-lfs understands as "no locking API here": it records
   * `lfs.<url>.locksverify false` and pushes without a word, where a 200 would
   * print advice (with the remote URL, credentials and all) on every push.
   */
  async locksVerify(ctx: RequestContext): Promise<void> {
    this.d.gate.authorize(ctx, 'publisher');
    throw new HttpError(501, 'NotImplemented', 'this hub does not implement Git LFS file locking');
  }

  async locksList(ctx: RequestContext): Promise<void> {
    this.d.gate.authorize(ctx, 'site');
    sendJson(ctx.res, 200, { locks: [] }, LFS_TYPE);
  }
}
