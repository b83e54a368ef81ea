/**
 * LFS objects in an S3-compatible bucket (`serve --objects s3://bucket/prefix`).
 * Keys follow git-lfs's layout under the prefix,
 * `<prefix><repo>.git/lfs/objects/aa/bb/<oid>`, so a filesystem hub's
 * `repos/` tree syncs into the bucket as is. Downloads are presigned GET URLs
 * handed out in batch answers: agents fetch from the store (or a CDN in front
 * of it) and the hub carries no object bytes. Uploads still stream through the
 * hub and are verified before they show (s3-upload.ts).
 *
 * Only calls that AWS S3, MinIO, Cloudflare R2 and Ceph RGW all implement:
 * HeadBucket, HeadObject, PutObject, the multipart calls, ListObjects (v1,
 * with Marker) and SigV4 presigned GETs.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GetObjectCommand, HeadObjectCommand, ListObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { Logger } from '../../log.ts';
import { lfsObjectRelPath } from '../../registry/lfs-pointer.ts';
import { HttpError } from '../http-util.ts';
import type { ObjectStorage, ReceiveOptions, Received } from './index.ts';
import { connectS3, describeS3Error, s3Status, type S3Settings } from './s3-client.ts';
import { MIN_PART_BYTES, putVerified } from './s3-upload.ts';
import { UploadMeter, uploadAborted, uploadLimit } from './upload-check.ts';

/** SigV4 presigned URLs live at most a week. */
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;
const OBJECT_KEY_RE = /\.git\/lfs\/objects\/[0-9a-f]{2}\/[0-9a-f]{2}\/[0-9a-f]{64}$/;

export interface S3ObjectsOptions extends S3Settings {
  logger: Logger;
  /** Preferred multipart part size (default 16 MiB, at least 5 MiB). */
  partBytes?: number;
  /** The clock presigned URLs are signed with (tests). */
  now?: () => Date;
}

export class S3Objects implements ObjectStorage {
  readonly description: string;

  private constructor(
    private readonly client: S3Client,
    private readonly o: S3ObjectsOptions,
    endpoint: string | undefined,
    pathStyle: boolean,
  ) {
    this.description = `s3://${o.bucket}/${o.prefix}${endpoint ? ` at ${endpoint}` : ''}${pathStyle ? ' (path-style)' : ''}`;
  }

  static async open(o: S3ObjectsOptions): Promise<S3Objects> {
    const { client, endpoint, pathStyle } = await connectS3(o);
    return new S3Objects(client, o, endpoint, pathStyle);
  }

  key(repo: string, oid: string): string {
    return `${this.o.prefix}${repo}.git/${lfsObjectRelPath(oid)}`;
  }

  async size(repo: string, oid: string): Promise<number | null> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.o.bucket, Key: this.key(repo, oid) }));
      return head.ContentLength ?? null;
    } catch (err) {
      // 404 only with s3:ListBucket; without it a missing key is a 403, which must not read as "missing".
      if (s3Status(err) === 404) return null;
      throw new HttpError(502, 'ObjectStoreError', `the object store refused HeadObject for ${oid}: ${describeS3Error(err)}`);
    }
  }

  async downloadUrl(repo: string, oid: string, ttlSeconds: number): Promise<string> {
    const expiresIn = Math.max(1, Math.min(MAX_PRESIGN_SECONDS, Math.floor(ttlSeconds)));
    const command = new GetObjectCommand({ Bucket: this.o.bucket, Key: this.key(repo, oid) });
    return getSignedUrl(this.client, command, { expiresIn, ...(this.o.now ? { signingDate: this.o.now() } : {}) });
  }

  /**
   * The hub's own object href (a client holding an old href, or one that asks
   * the hub directly): a redirect to a presigned URL, so even then the bytes
   * do not pass through the hub.
   */
  async serve(req: IncomingMessage, res: ServerResponse, repo: string, oid: string): Promise<number> {
    const size = await this.size(repo, oid);
    if (size === null) throw new HttpError(404, 'ObjectNotFound', `object ${oid} not found`);
    if (req.method === 'HEAD') {
      // A presigned GET cannot answer HEAD (the method is signed); the size is what a HEAD is for.
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': size, 'Accept-Ranges': 'bytes', ETag: `"${oid}"` });
      res.end();
      return 0;
    }
    const url = await this.downloadUrl(repo, oid, 300);
    res.writeHead(302, { Location: url, 'Cache-Control': 'no-store', 'Content-Length': 0 });
    res.end();
    return 0;
  }

  async receive(req: IncomingMessage, repo: string, oid: string, opts: ReceiveOptions): Promise<Received> {
    const key = this.key(repo, oid);
    const stored = await this.size(repo, oid);
    if (stored !== null) {
      // Already there: verify the body as a fresh upload would be, and send nothing to the store.
      const meter = new UploadMeter(uploadLimit(req, opts));
      try {
        for await (const chunk of req) meter.take(chunk as Buffer);
      } catch (err) {
        if (err instanceof HttpError) throw err;
        throw uploadAborted(err);
      }
      meter.verify(oid, opts.expectedSize);
      if (meter.size !== stored) throw new HttpError(409, 'SizeMismatch', `the object store holds ${stored} bytes for ${oid}, the upload has ${meter.size}`);
      return { size: meter.size, created: false };
    }
    const size = await putVerified({ client: this.client, bucket: this.o.bucket, key, partBytes: Math.max(MIN_PART_BYTES, this.o.partBytes ?? 16 << 20), logger: this.o.logger }, req, oid, opts);
    return { size, created: true };
  }

  async count(): Promise<number> {
    let n = 0;
    let marker: string | undefined;
    for (;;) {
      const page = await this.client.send(new ListObjectsCommand({ Bucket: this.o.bucket, Prefix: this.o.prefix, ...(marker ? { Marker: marker } : {}) }));
      const keys = (page.Contents ?? []).map((c) => c.Key ?? '');
      n += keys.filter((k) => OBJECT_KEY_RE.test(k)).length;
      if (!page.IsTruncated || keys.length === 0) return n;
      // ListObjects (v1) gives NextMarker only with a delimiter: the last key is the marker.
      marker = page.NextMarker ?? keys[keys.length - 1];
    }
  }

  close(): void {
    this.client.destroy();
  }
}
