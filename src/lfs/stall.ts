/**
 * Dead connections, told apart from slow ones.
 *
 * When a link drops and comes back with new NAT state (a cellular modem
 * reconnecting, a router restart), every connection open across it is dead:
 * no FIN, no RST, the server's packets go nowhere. Our side of TCP cannot
 * tell; only the idle timeout (30 s by default) ends the body, and the
 * download resumes 30 s after the link is already back. A blacked-out link
 * whose connections survive is little better: TCP's retransmission backoff
 * can leave a connection silent for many seconds after the link returns.
 *
 * So a body (a whole download, a parallel range, a chunk-delta range)
 * silent for STALL_PROBE_MS (silence our own bandwidth cap caused
 * does not count) sends the server a small request on a new connection. If
 * the server answers while the body is still silent, the path works and the
 * body's connection does not: the body ends with a NetworkError, and the
 * download resumes from the bytes on disk with a Range request, as after any
 * cut. A probe that gets no answer (the link is still down) changes nothing;
 * the next one follows after another STALL_PROBE_MS of silence.
 */
import { NetworkError } from '../errors.ts';

/** Silence (no body bytes, our cap not holding) after which the server is probed on a new connection. */
export const STALL_PROBE_MS = 5_000;

/**
 * Bodies of one object this watch may end. A server (or a CDN fetching from
 * its origin) that pauses its bodies for longer than STALL_PROBE_MS while it
 * answers a HEAD at once would otherwise be cut on every attempt; after this
 * many, that object's bodies are left to the idle timeout, as before.
 */
export const MAX_STALL_KILLS = 2;

export interface StallWatch {
  /** Body bytes arrived. */
  got(n: number): void;
  /** `p` is our own cap holding reads back: silence while it runs is ours, not the connection's. */
  held<T>(p: Promise<T>): Promise<T>;
  stop(): void;
}

export interface StallOptions {
  where: string;
  /** The object's count of bodies ended this way (AttemptContext.stalls): shared by its attempts and ranges. */
  stalls?: { killed: number };
  /** Ask the server something small on a new connection; true if it answered (status below 500) before `signal`. */
  probe(signal: AbortSignal): Promise<boolean>;
  /** End the body with `err` (its pipe rejects with it). */
  onDead(err: NetworkError): void;
  afterMs?: number;
  now?: () => number;
}

const UNWATCHED: StallWatch = { got: () => {}, held: (p) => p, stop: () => {} };

export function watchStall(opts: StallOptions): StallWatch {
  if (opts.stalls && opts.stalls.killed >= MAX_STALL_KILLS) return UNWATCHED;
  const afterMs = opts.afterMs ?? STALL_PROBE_MS;
  const now = opts.now ?? (() => performance.now());
  let last = now();
  let holding = 0;
  let probing: AbortController | undefined;
  let stopped = false;
  // A probe that failed fast (connection refused, a proxy's 502) is not repeated before another afterMs.
  let nextProbeAt = 0;
  const tick = (): void => {
    if (stopped || probing) return;
    if (holding > 0) last = now();
    const silentSince = last;
    if (now() - silentSince < afterMs || now() < nextProbeAt) return;
    nextProbeAt = now() + afterMs;
    const ac = new AbortController();
    probing = ac;
    const deadline = setTimeout(() => ac.abort(), afterMs);
    deadline.unref();
    opts.probe(ac.signal).then(
      (answered) => {
        clearTimeout(deadline);
        probing = undefined;
        // Bytes since the probe started: the body was only slow.
        if (stopped || !answered || last !== silentSince) return;
        stopped = true;
        clearInterval(timer);
        if (opts.stalls) opts.stalls.killed++;
        const s = Math.round((now() - silentSince) / 1000);
        opts.onDead(new NetworkError(`GET ${opts.where}: no body bytes for ${s}s while the server answers a new connection at once: the connection is dead; resuming on a new one`, { url: opts.where, stalled: true }));
      },
      () => {
        clearTimeout(deadline);
        probing = undefined;
      },
    );
  };
  const timer = setInterval(tick, Math.max(50, Math.floor(afterMs / 5)));
  timer.unref();
  return {
    got: (n) => {
      if (n > 0) last = now();
    },
    async held(p) {
      holding++;
      try {
        return await p;
      } finally {
        holding--;
        last = now();
      }
    },
    stop: () => {
      stopped = true;
      clearInterval(timer);
      probing?.abort();
    },
  };
}
