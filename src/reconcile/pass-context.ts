/** What every step of a pass reads and writes (see pass.ts for the order of the steps). */
import type { ObjectFetcher } from '../lfs/types.ts';
import type { Logger } from '../log.ts';
import type { ResolvedSite } from '../registry/desired.ts';
import type { Registry } from '../registry/load.ts';
import type { Barrier, Store, StoreLock, StoreState } from '../store/index.ts';
import type { ActivationHooks } from './hooks.ts';
import type { FetcherFactory } from './fetcher.ts';
import type { DesiredInput, Plan } from './plan.ts';
import type { OpenedRegistry } from './registry-access.ts';
import type { PassError } from './result.ts';
import type { VerifySettings } from '../trust/index.ts';

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
  /** The pass's overall deadline (`pass_timeout`): past it the pass stops, keeps partial downloads and releases the lock. */
  timeoutMs?: number;
  /** A store locked by another live process: wait up to this long for it (default 0: fail at once with LockedError). */
  lockWaitMs?: number;
  /** Apply the site's retention after a pass that changed something (default true). */
  retention?: boolean;
  /** How long a server (registry or LFS) may stay silent mid-request before the pass gives up on it (default 60 s). */
  networkTimeoutMs?: number;
  /** Largest file accepted as a plain git blob (default MAX_PLAIN_BLOB_BYTES). */
  maxPlainBlobBytes?: number;
  /** Free bytes on the store's filesystem, for tests (default: statfs). */
  freeBytes?: () => Promise<number>;
  /** Apply only commits signed by keys trusted here (agent.yaml `verify:`); absent: no signature check. */
  verify?: VerifySettings;
}

export interface Activation {
  model: string;
  version: string;
  from?: string;
  previousBefore?: string;
  /** A repair of the active version: same version, services need nothing. */
  repair: boolean;
  /** Switched by an earlier pass that ended before its services were judged: judged now. */
  resumed?: { since: string; by: 'reconcile' | 'interrupted-pass' };
  /** Switched by an earlier pass and judged unhealthy since (a metric gate that failed while soaking): rolled back now. */
  late?: { service: string; reason: string };
}

export interface PassContext {
  opts: ReconcileOptions;
  /** opts.signal, or the pass's deadline, whichever fires first: what every step stops on. */
  signal?: AbortSignal;
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
  /** 429/503 answers from the LFS server or storage that were waited out (Retry-After) and retried. */
  throttled?: number;
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
  /** A switch is held for the maintenance window that opens then (window.ts). */
  waitUntil?: Date;
}

export type Step = (ctx: PassContext) => Promise<void>;
