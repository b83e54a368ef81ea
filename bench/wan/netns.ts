/**
 * The WAN benchmark's link: a network namespace of its own whose loopback
 * carries a `tbf` rate limit (this kernel has no `netem`; latency comes from
 * delay-proxy.ts). Everything runs inside the namespace and talks only to
 * 127.0.0.0/8 there:
 *
 *   site (agent, curl) ──▶ 127.0.0.2:8000 delay proxy ──▶ 127.0.0.1:7000 hub
 *        └──── the link: tbf each way ────┘   └── unshaped (the hub's LAN) ──┘
 *
 * Both legs cross the same loopback, so a bare tbf on `lo` would charge every
 * byte twice (hub→proxy and proxy→site) and halve the link. An `htb` root
 * with fast classes sorts packets instead: u32 filters send the site↔proxy
 * leg (source or destination 127.0.0.2 with the proxy's port) to two `tbf`
 * leaves, one per direction (a full-duplex link: 20 Mbit/s down and 20 up),
 * and everything else to an unshaped class. The MTU is 1500 as on a real WAN,
 * so headers cost what they cost there (1448 payload bytes per 1514 on the
 * wire: at most 95.6 % of the line rate is goodput).
 *
 * A link drop swaps both tbf leaves for ones whose burst (1 byte) is
 * smaller than any packet: tbf drops every packet it cannot ever send, so the
 * link blackholes both ways (SYNs, data, ACKs, RSTs) until restored.
 *
 * One artefact of dropping at the sender's own qdisc: Linux TCP sees a local
 * drop and retries every 0.5 s (TCP_RESOURCE_PROBE_INTERVAL) instead of
 * backing its retransmission timer off, so a connection that survives the
 * drop, or a SYN sent during it, gets through within half a second of
 * link-up. Out in a real network the next backed-off retransmission may be
 * seconds later. Connections the proxy silences (delay-proxy.ts) do not
 * depend on this: they stay dead and only the client's timeout ends them.
 */
import { spawnSync } from 'node:child_process';

export const NS_PREFIX = 'msync-wan-';
export const HUB = { host: '127.0.0.1', port: 7000 };
export const PROXY = { host: '127.0.0.2', port: 8000 };

export interface LinkModel {
  rateMbit: number;
  /** tbf bucket, bytes (the most sent back to back at line speed). */
  burstBytes: number;
  /** tbf queue, as the longest a packet may wait in it. */
  latencyMs: number;
  rttMs: number;
}

function sh(args: string[], allowFail = false): string {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  if (r.status !== 0 && !allowFail) throw new Error(`${args.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}`);
  return r.stdout ?? '';
}

/** Whether this machine can make namespaces and shape them (root, iproute2, tbf, htb, u32). */
export function netnsProblem(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (ip netns)';
  const probe = `${NS_PREFIX}probe-${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `ip netns add failed: ${r.error?.message ?? r.stderr.trim()}`;
  try {
    shape(probe, { rateMbit: 20, burstBytes: 32 << 10, latencyMs: 200, rttMs: 100 });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    sh(['ip', 'netns', 'del', probe], true);
  }
}

/** Namespaces left by an earlier run that died (their owner pid is gone): kill what runs in them, remove them. */
export function sweepStale(log: (l: string) => void): void {
  for (const line of sh(['ip', 'netns', 'list'], true).split('\n')) {
    const name = line.split(' ')[0] ?? '';
    if (!name.startsWith(NS_PREFIX)) continue;
    const owner = Number(/-(\d+)$/.exec(name)?.[1]);
    if (Number.isInteger(owner) && owner !== process.pid && alive(owner)) continue;
    log(`removing stale namespace ${name}`);
    destroy(name);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function create(log: (l: string) => void, link: LinkModel): string {
  const name = `${NS_PREFIX}${process.pid}`;
  sh(['ip', 'netns', 'add', name]);
  try {
    shape(name, link);
  } catch (err) {
    destroy(name);
    throw err;
  }
  log(`namespace ${name}: lo mtu 1500, tbf ${link.rateMbit} Mbit/s each way, burst ${link.burstBytes} B, queue ${link.latencyMs} ms; proxy ${PROXY.host}:${PROXY.port} adds ${link.rttMs} ms RTT`);
  return name;
}

function tc(ns: string, args: string[]): void {
  sh(['ip', 'netns', 'exec', ns, 'tc', ...args]);
}

function tbfArgs(link: LinkModel, up: boolean): string[] {
  const burst = up ? link.burstBytes : 1;
  return ['tbf', 'rate', `${link.rateMbit}mbit`, 'burst', String(burst), 'latency', `${link.latencyMs}ms`];
}

function shape(ns: string, link: LinkModel): void {
  sh(['ip', '-n', ns, 'link', 'set', 'lo', 'mtu', '1500', 'up']);
  tc(ns, ['qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '30', 'r2q', '100000']);
  for (const c of ['10', '20', '30']) tc(ns, ['class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', `1:${c}`, 'htb', 'rate', '10gbit']);
  tc(ns, ['qdisc', 'add', 'dev', 'lo', 'parent', '1:10', 'handle', '10:', ...tbfArgs(link, true)]);
  tc(ns, ['qdisc', 'add', 'dev', 'lo', 'parent', '1:20', 'handle', '20:', ...tbfArgs(link, true)]);
  const port = String(PROXY.port);
  // Down: from the proxy's port to the site. Up: from the site to the proxy's port.
  tc(ns, ['filter', 'add', 'dev', 'lo', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'src', `${PROXY.host}/32`, 'match', 'ip', 'sport', port, '0xffff', 'flowid', '1:10']);
  tc(ns, ['filter', 'add', 'dev', 'lo', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'dst', `${PROXY.host}/32`, 'match', 'ip', 'dport', port, '0xffff', 'flowid', '1:20']);
}

/** Blackhole the link (both directions) or bring it back; run from inside the namespace or outside. */
export function setLink(ns: string | undefined, link: LinkModel, up: boolean): void {
  for (const h of ['10', '20']) {
    const args = ['tc', 'qdisc', 'change', 'dev', 'lo', 'parent', `1:${h}`, 'handle', `${h}:`, ...tbfArgs(link, up)];
    sh(ns ? ['ip', 'netns', 'exec', ns, ...args] : args);
  }
}

/** Bytes each tbf leaf has sent and dropped (from `tc -s`), for the report. */
export function linkCounters(ns: string | undefined): { down: { sent: number; dropped: number }; up: { sent: number; dropped: number } } {
  const out = sh(ns ? ['ip', 'netns', 'exec', ns, 'tc', '-s', 'qdisc', 'show', 'dev', 'lo'] : ['tc', '-s', 'qdisc', 'show', 'dev', 'lo']);
  const leaf = (h: string): { sent: number; dropped: number } => {
    const m = new RegExp(`qdisc tbf ${h}: [^\\n]*\\n\\s*Sent (\\d+) bytes \\d+ pkt \\(dropped (\\d+)`).exec(out);
    return { sent: Number(m?.[1] ?? NaN), dropped: Number(m?.[2] ?? NaN) };
  };
  return { down: leaf('10'), up: leaf('20') };
}

/** Kill every process still in the namespace (ours: it is ours), then remove it. */
export function destroy(ns: string): void {
  for (const pid of sh(['ip', 'netns', 'pids', ns], true).split('\n').map(Number).filter((p) => p > 0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  sh(['ip', 'netns', 'del', ns], true);
}
