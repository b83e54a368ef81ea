/**
 * Bounds on what one request may make the hub read, hold or store. Every
 * number here is a ceiling against mistakes and abuse, not a tuning knob: a
 * legitimate client of a model registry stays far below each of them.
 */
export interface HubLimits {
  /** An LFS batch request: ~120 bytes per object, so 1 MiB is several thousand objects. */
  batchBodyBytes: number;
  /** A site's status report (its models, versions, errors). */
  statusBodyBytes: number;
  /** Small JSON bodies: verify, locks/verify. */
  smallJsonBytes: number;
  /** One LFS object. */
  objectBytes: number;
  /** One Git request body (a pushed pack; model files themselves travel through LFS). */
  gitBodyBytes: number;
  /** Events kept in memory for `Last-Event-ID` resume. */
  eventRing: number;
  /** Concurrent SSE subscribers; each holds a socket. */
  eventSubscribers: number;
  /** How long an LFS action href stays valid. */
  actionTtlSeconds: number;
  /** How long close() waits for in-flight requests before cutting them. */
  shutdownGraceMs: number;
  /**
   * A connection with no bytes moving either way for this long is closed
   * (event streams excepted): a client that stalls mid-upload or stops
   * reading a download cannot hold a socket, a file or a repo lock for ever.
   */
  idleTimeoutMs: number;
  /**
   * A request's headers must be in within this long of its first byte,
   * however slowly they trickle (the idle timeout alone would let a client
   * send one byte a minute for ever). Bodies have no overall deadline: a
   * model upload may take hours.
   */
  headersTimeoutMs: number;
  /**
   * Open connections at once; past it new ones are closed as they arrive.
   * Every agent's event stream holds one, so this bounds the fleet a hub can
   * keep subscribed as well as its file descriptors.
   */
  maxConnections: number;
  /** `git http-backend` processes running at once (each may take a core and memory). */
  gitProcesses: number;
  /** Git requests waiting for a process slot; past this they get 503 with Retry-After. */
  gitQueue: number;
  /**
   * Git process slots one token may hold at once; its further requests wait
   * (up to gitQueue) without taking a slot. A slot is held while the request
   * body arrives, so without this one token dripping bodies slowly could hold
   * every slot and block a publisher's push; queueing rather than refusing
   * keeps many agents that share a site token from failing on a burst.
   */
  gitProcessesPerToken: number;
  /**
   * Open event streams per token, so one token cannot take every subscriber
   * slot; a site token listing more than half this many sites may hold two
   * per site (one agent each, plus a restarting one's), see streamCap.
   */
  eventSubscribersPerToken: number;
  /** Nesting depth of a JSON body (status reports); deeper documents are refused before they are stored. */
  jsonDepth: number;
}

export const DEFAULT_LIMITS: Readonly<HubLimits> = Object.freeze({
  batchBodyBytes: 1 << 20,
  statusBodyBytes: 256 << 10,
  smallJsonBytes: 64 << 10,
  objectBytes: 256 * 2 ** 30,
  gitBodyBytes: 2 * 2 ** 30,
  eventRing: 1000,
  eventSubscribers: 10_000,
  actionTtlSeconds: 3600,
  shutdownGraceMs: 30_000,
  idleTimeoutMs: 120_000,
  headersTimeoutMs: 30_000,
  maxConnections: 4096,
  gitProcesses: 16,
  gitQueue: 128,
  gitProcessesPerToken: 4,
  eventSubscribersPerToken: 100,
  jsonDepth: 64,
});
