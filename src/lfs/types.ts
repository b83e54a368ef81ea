/**
 * The contract between the reconcile loop and whatever brings LFS objects to
 * a site (the HTTP batch client, a local repository's git-lfs cache, a
 * mirror). Reconcile only ever sees verified files.
 */
import type { ModelsyncError } from '../errors.ts';

export interface LfsObject {
  oid: string;
  size: number;
}

export interface FetchProgress {
  oid: string;
  /** Bytes of this object on disk so far (resumed bytes included). */
  bytes: number;
  size: number;
}

export interface FetchOptions {
  /** Partial downloads live at `<tmpDir>/<oid>.part`; an existing one is resumed. */
  tmpDir: string;
  /**
   * Called once per object, after every byte hashed to its oid and size.
   * The callee takes ownership of `path` (typically renames it into the store).
   */
  onVerified(obj: LfsObject, path: string): Promise<void>;
  onProgress?(p: FetchProgress): void;
  signal?: AbortSignal;
  /**
   * Epoch ms after which no retry wait starts (the pass deadline): a server
   * asking for a Retry-After beyond it fails the object now, keeping its
   * partial file, instead of sleeping into the deadline.
   */
  deadline?: number;
  /** Optional: what a chunk-delta download may reuse (DESIGN.md "Delta"); without it every object is fetched whole. */
  delta?: DeltaHints;
  /**
   * The caller fsyncs each verified file (the store does, before anything is
   * visible): whole downloads then start writeback as they go, so that fsync
   * finds little left to flush. Off, a download leaves its bytes to the page
   * cache, which is faster for a caller that never syncs.
   */
  durable?: boolean;
}

/** Material for chunk-delta downloads, supplied by whoever knows the manifests and the store. */
export interface DeltaHints {
  /** The chunk index LFS object of `obj` (a manifest's `files[].chunks`), when the publisher made one. */
  chunkIndex(obj: LfsObject): LfsObject | undefined;
  /** Files already on this site that may share chunks with `obj`, typically earlier versions of the same file. */
  localCandidates(obj: LfsObject): readonly string[] | Promise<readonly string[]>;
  /**
   * Optional: the chunk index the site kept for a candidate (see keepIndex), with
   * the object it describes. With one, the candidate's chunks are known without
   * reading the file; without, the file is read and cut to find them.
   */
  keptIndex?(candidate: string): Promise<{ bytes: Buffer; file: LfsObject } | undefined>;
  /** Optional: keep the verified chunk index of `obj`, for the next upgrade of the same file. */
  keepIndex?(obj: LfsObject, bytes: Buffer): Promise<void>;
}

export interface FetchResult {
  /** Objects verified and handed to onVerified. */
  fetched: LfsObject[];
  /** Bytes that crossed the network (or were copied), resumed bytes excluded. */
  bytesTransferred: number;
  /** Optional: bytesTransferred per object (chunk index downloads count for their object), for per-model figures. */
  bytesByOid?: Record<string, number>;
  /** Optional: 429/503 answers (batch API and storage) that were waited out and retried, for metrics. */
  throttled?: number;
  /** Objects that could not be fetched, each with a typed error (ChecksumError, NetworkError, NotFoundError…). */
  failed: Array<{ obj: LfsObject; error: ModelsyncError }>;
}

export interface ObjectFetcher {
  /** Human description without credentials ("https://hub/registry.git/info/lfs"). */
  readonly description: string;
  fetch(objects: readonly LfsObject[], options: FetchOptions): Promise<FetchResult>;
}
