/**
 * A latency-injecting TCP proxy for the WAN benchmark (and the resume test):
 * every chunk read on one side is held for RTT/2 before it is written to the
 * other, in order, in each direction. The rate limit is not ours: the
 * namespace's `tbf` does that on the wire.
 *
 * It is a split-TCP model (like a PEP): the kernel's TCP on each leg sees a
 * loopback round trip, so what a 100 ms path does to a TCP sender has to be
 * modelled here. Per direction of each connection we keep a congestion
 * window the way an unimpeded Linux sender grows one: 10 segments at first,
 * growing by every byte acknowledged (slow start), acknowledged one RTT after
 * it was read, capped at `windowBytes`, and back to 10 segments after an idle
 * spell longer than an RTO. A new connection's first bytes wait one extra
 * RTT (the handshake that our local accept skips). The source is not read while the window is full,
 * so a single stream moves at most `windowBytes` per RTT — set it to 64 KiB
 * to see a peer without window scaling. Loss and its recovery on the long
 * path are not modelled (the tbf's drops are recovered on the short leg).
 *
 * `silence()` models the uplink losing its NAT state (a modem that
 * reconnects): every open connection goes dead without a FIN or RST, and
 * each peer learns of it only from its own timeouts. `cut()` resets every
 * connection at once (both sides see ECONNRESET).
 *
 * Run as a process: `node --import tsx bench/wan/delay-proxy.ts --listen
 * 127.0.0.2:8000 --upstream 127.0.0.1:7000 --rtt 100`; stdin takes the
 * commands `cut`, `silence`, `stats`; each answer is one JSON line on stdout.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { pathToFileURL } from 'node:url';

const SEGMENT = 1448;

export interface DelayProxyOptions {
  listenHost: string;
  listenPort: number;
  upstreamHost: string;
  upstreamPort: number;
  /** Round trip added to the path; each direction gets half. */
  rttMs: number;
  /** Largest window (bytes unacknowledged per direction of a connection); default 4 MiB, about what Linux autotunes to. */
  windowBytes?: number;
  /** Initial window; default 10 segments (RFC 6928). */
  initialWindowBytes?: number;
}

export interface ProxyStats {
  connections: number;
  open: number;
  /** Bytes written towards the client (downstream) and towards the upstream, over all connections. */
  bytesDown: number;
  bytesUp: number;
  resets: number;
}

/** One direction of one connection: a FIFO of chunks, each released `delayMs` after it was read. */
class DelayLine {
  private readonly queue: Array<{ at: number; chunk: Buffer | null }> = [];
  private timer: NodeJS.Timeout | undefined;
  private waitingDrain = false;
  private inflight = 0;
  private cwnd: number;
  private lastActive = Date.now();
  closed = false;
  /** A dead path: whatever arrives is read (so the kernel on our leg stays happy) and thrown away. */
  private silent = false;

  constructor(
    private readonly src: Socket,
    private readonly dst: Socket,
    private readonly delayMs: number,
    private readonly o: { window: number; initial: number; rto: number; count(n: number): void; notBefore?: number },
  ) {
    this.cwnd = o.initial;
    src.on('data', (chunk: Buffer) => this.push(chunk));
    src.on('end', () => this.push(null));
  }

  private push(chunk: Buffer | null): void {
    if (this.silent) return;
    const now = Date.now();
    // A sender idle for longer than an RTO starts over from the initial window (tcp_slow_start_after_idle).
    if (this.inflight === 0 && now - this.lastActive > this.o.rto) this.cwnd = this.o.initial;
    this.lastActive = now;
    // Nothing leaves before the handshake would have finished (notBefore), and order is kept.
    this.queue.push({ at: Math.max(now, this.o.notBefore ?? 0) + this.delayMs, chunk });
    if (chunk) {
      this.inflight += chunk.length;
      if (this.inflight >= this.cwnd) this.src.pause();
    }
    this.arm();
  }

  private arm(): void {
    if (this.timer || this.waitingDrain || this.closed || this.queue.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.release();
    }, Math.max(0, this.queue[0]!.at - Date.now()));
  }

  private release(): void {
    const now = Date.now();
    while (!this.closed && this.queue.length > 0 && this.queue[0]!.at <= now) {
      const { chunk } = this.queue.shift()!;
      if (chunk === null) {
        this.dst.end();
        continue;
      }
      const ok = this.dst.write(chunk);
      this.o.count(chunk.length);
      // The acknowledgement comes back after the other half of the round trip.
      setTimeout(() => this.ack(chunk.length), this.delayMs).unref();
      if (!ok) {
        this.waitingDrain = true;
        this.dst.once('drain', () => {
          this.waitingDrain = false;
          this.release();
        });
        return;
      }
    }
    this.arm();
  }

  private ack(n: number): void {
    this.inflight -= n;
    this.lastActive = Date.now();
    this.cwnd = Math.min(this.o.window, this.cwnd + n);
    if (!this.closed && this.inflight < this.cwnd && this.src.isPaused()) this.src.resume();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  /** Drop what is queued and everything that comes later; never forward again. */
  silence(): void {
    this.silent = true;
    this.close();
    this.queue.length = 0;
    this.src.resume();
  }
}

export class DelayProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket; lines: DelayLine[] }>();
  readonly stats: ProxyStats = { connections: 0, open: 0, bytesDown: 0, bytesUp: 0, resets: 0 };

  constructor(private readonly o: DelayProxyOptions) {}

  /** Listen; resolves with the port (useful with listenPort 0). */
  start(): Promise<number> {
    const half = this.o.rttMs / 2;
    const lineOpts = (count: (n: number) => void, notBefore?: number) => ({
      ...(notBefore ? { notBefore } : {}),
      window: this.o.windowBytes ?? 4 << 20,
      initial: this.o.initialWindowBytes ?? 10 * SEGMENT,
      rto: this.o.rttMs + 200,
      count,
    });
    // Half-open allowed on both legs: a FIN is data too, and travels through the delay line like the rest.
    this.server = createServer({ noDelay: true, allowHalfOpen: true }, (client) => {
      this.stats.connections++;
      this.stats.open++;
      const upstream = connect({ host: this.o.upstreamHost, port: this.o.upstreamPort, noDelay: true, allowHalfOpen: true });
      const lines = [
        // The client's first bytes leave one RTT after it connected: our accept is local, a real SYN/SYN-ACK is not.
        new DelayLine(client, upstream, half, lineOpts((n) => (this.stats.bytesUp += n), Date.now() + this.o.rttMs)),
        new DelayLine(upstream, client, half, lineOpts((n) => (this.stats.bytesDown += n))),
      ];
      const pair = { client, upstream, lines };
      this.pairs.add(pair);
      let closed = 0;
      const forget = (): void => {
        if (!this.pairs.delete(pair)) return;
        this.stats.open--;
        for (const l of lines) l.close();
      };
      // An error (a reset) on one side resets the other at once; clean closes finish on their own.
      const kill = (): void => {
        forget();
        if (!client.destroyed) client.resetAndDestroy();
        if (!upstream.destroyed) upstream.resetAndDestroy();
      };
      const onClose = (): void => {
        if (++closed === 2) forget();
      };
      client.on('error', kill).on('close', onClose);
      upstream.on('error', kill).on('close', onClose);
    });
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.o.listenPort, this.o.listenHost, () => resolve((this.server!.address() as { port: number }).port));
    });
  }

  /** Reset every connection now (both legs, RST not FIN); returns how many there were. */
  cut(): number {
    const n = this.pairs.size;
    for (const p of [...this.pairs]) {
      this.pairs.delete(p);
      this.stats.open--;
      for (const l of p.lines) l.close();
      if (!p.client.destroyed) p.client.resetAndDestroy();
      if (!p.upstream.destroyed) p.upstream.resetAndDestroy();
    }
    this.stats.resets += n;
    return n;
  }

  /**
   * Every open connection goes dead without a word: nothing is forwarded on
   * it again, and no FIN or RST is sent, as when the uplink comes back with
   * new NAT state and the old mappings are gone. Each peer finds out only
   * from its own timeouts. New connections work as before.
   */
  silence(): number {
    const n = this.pairs.size;
    for (const p of [...this.pairs]) {
      this.pairs.delete(p);
      this.stats.open--;
      for (const l of p.lines) l.silence();
      // Whoever gives up first closes its socket; then ours go too, quietly.
      for (const s of [p.client, p.upstream]) s.once('close', () => { p.client.destroy(); p.upstream.destroy(); });
    }
    this.stats.resets += n;
    return n;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

function hostPort(v: string | undefined, flag: string): { host: string; port: number } {
  const m = v ? /^(.+):(\d+)$/.exec(v) : null;
  if (!m) throw new Error(`${flag} host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

async function main(argv: string[]): Promise<void> {
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const listen = hostPort(arg('--listen'), '--listen');
  const up = hostPort(arg('--upstream'), '--upstream');
  const proxy = new DelayProxy({
    listenHost: listen.host,
    listenPort: listen.port,
    upstreamHost: up.host,
    upstreamPort: up.port,
    rttMs: Number(arg('--rtt') ?? 100),
    ...(arg('--window') ? { windowBytes: Number(arg('--window')) } : {}),
  });
  const port = await proxy.start();
  const say = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
  say({ listening: `${listen.host}:${port}` });
  let buf = '';
  process.stdin.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const cmd = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (cmd === 'cut') say({ cut: proxy.cut(), stats: proxy.stats });
      else if (cmd === 'silence') say({ silence: proxy.silence(), stats: proxy.stats });
      else if (cmd === 'stats') say({ stats: proxy.stats });
    }
  });
  // The parent went away: so do we.
  process.stdin.on('end', () => void proxy.close().then(() => process.exit(0)));
  for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, () => void proxy.close().then(() => process.exit(0)));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
