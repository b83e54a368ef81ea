/**
 * The object store `--objects` names. The S3 implementation (and with it the
 * AWS SDK, some 10 MiB of modules) is imported only here and only when asked
 * for: an agent, the CLI and a filesystem hub never load it.
 */
import type { Logger } from '../../log.ts';
import type { ObjectStorage, ObjectsSpec } from './index.ts';

export interface S3Flags {
  endpoint?: string;
  pathStyle?: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  region?: string;
  partBytes?: number;
  /** The clock presigned URLs are signed with (tests). */
  now?: () => Date;
}

/** The store for an s3:// spec; undefined for the filesystem, which the hub makes over its own repos (storage/fs.ts). */
export async function openObjectStorage(spec: ObjectsSpec, deps: { logger: Logger; s3?: S3Flags }): Promise<ObjectStorage | undefined> {
  if (spec.kind === 'fs') return undefined;
  const { S3Objects } = await import('./s3.ts');
  return S3Objects.open({ ...deps.s3, bucket: spec.bucket, prefix: spec.prefix, logger: deps.logger });
}
