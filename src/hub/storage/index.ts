/**
 * Where the hub keeps LFS object bytes, behind one interface: the filesystem
 * under --data (fs.ts, the default) or an S3-compatible bucket (s3.ts, loaded
 * only when `--objects s3://…` asks for it, so neither the agent nor a
 * filesystem hub ever loads the AWS SDK; open.ts picks one).
 *
 * Every implementation keeps the same promise: an object is visible under its
 * oid only once its bytes hashed to that oid and had the declared size.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConfigError } from '../../errors.ts';

export interface ReceiveOptions {
  /** The hub's ceiling for one object. */
  maxBytes: number;
  /** The size the batch request declared (bound into the upload grant), when known. */
  expectedSize?: number;
}

export interface Received {
  size: number;
  /** False when the object was already stored (the upload was verified and changed nothing). */
  created: boolean;
}

export interface ObjectStorage {
  /** For the start-up log line: where objects live. */
  readonly description: string;
  /** The stored size of an object, or null when the repo does not have it. */
  size(repo: string, oid: string): Promise<number | null>;
  /**
   * Where a client downloads the object when it is not the hub: a URL of the
   * store itself, valid for `ttlSeconds`, that needs no other credential
   * (a presigned GET). Null: the hub serves the bytes at its own href.
   */
  downloadUrl(repo: string, oid: string, ttlSeconds: number): Promise<string | null>;
  /** Answer GET/HEAD of the hub's own object href (one Range honoured). Returns the body bytes the hub sent. */
  serve(req: IncomingMessage, res: ServerResponse, repo: string, oid: string): Promise<number>;
  /** Take an upload, hashed while it streams; stored only when sha256 and size match. */
  receive(req: IncomingMessage, repo: string, oid: string, opts: ReceiveOptions): Promise<Received>;
  /** Objects stored across repositories (for the gauge; counted once at start). */
  count(): Promise<number>;
  /** Release connections (the hub is stopping). */
  close?(): void;
}

export type ObjectsSpec = { kind: 'fs' } | { kind: 's3'; bucket: string; prefix: string };

/**
 * `--objects`: absent or `fs` for the data dir, `s3://bucket[/prefix]` for a
 * bucket. The prefix is kept with one trailing "/" (or empty) so keys are
 * `<prefix><repo>.git/lfs/objects/aa/bb/<oid>`.
 */
export function parseObjectsSpec(spec: string | undefined): ObjectsSpec {
  if (spec === undefined || spec === '' || spec === 'fs') return { kind: 'fs' };
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(spec);
  // Bucket names as S3 allows them (3-63 of lowercase, digits, "." and "-"); MinIO and R2 are stricter, not looser.
  if (!m || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[1]!)) {
    throw new ConfigError(`--objects must be "fs" or s3://<bucket>[/<prefix>] with a valid bucket name, got ${JSON.stringify(spec)}`);
  }
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  // eslint-disable-next-line no-control-regex
  if (prefix.split('/').some((seg) => seg === '.' || seg === '..') || /[\u0000-\u001f\u007f\\]/.test(prefix)) {
    throw new ConfigError(`--objects: the prefix must not hold "." or ".." segments, backslashes or control characters, got ${JSON.stringify(spec)}`);
  }
  return { kind: 's3', bucket: m[1]!, prefix: prefix === '' ? '' : `${prefix}/` };
}
