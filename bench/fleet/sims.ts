/**
 * A child process holding many simulated agents (bench/fleet/driver.ts forks
 * a few so the client side does not bottleneck on one event loop). Each
 * simulated agent does what `modelsync agent` does on the wire and nothing
 * else: it holds `GET /api/v1/events?repo=<repo>` open with its own site
 * token, and posts its status document to `POST /api/v1/sites/<site>/status`
 * — once when told, and for every ref event on its branch a pass's two
 * reports (Progressing at once, Ready with the new commit after a simulated
 * pass). It fetches no Git or LFS objects: the real agents in the sample do.
 *
 * Protocol with the parent (IPC messages):
 *   parent → child  {type: 'report'}            every sim posts one Ready report; answer {type: 'reported'}
 *                   {type: 'storm', ms}          every sim posts back to back for ms; answer {type: 'stormed', count}
 *                   {type: 'stop'}               close everything and exit
 *   child → parent  {type: 'connected'}          every stream answered 200
 *                   {type: 'got', after, times}  every sim saw the ref event for `after` (epoch ms each)
 *                   {type: 'passed', after}      every sim posted its Ready report for `after`
 *                   {type: 'failure', what}      a request failed or a stream ended unasked (the bench must see 0)
 */
import { request, Agent as HttpAgent, type IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';

interface SimSpec {
  hub: string;
  repo: string;
  sims: Array<{ site: string; token: string }>;
  /** A simulated pass takes between passMinMs and passMaxMs (uniform). */
  passMinMs: number;
  passMaxMs: number;
  commit: string;
}

type FromParent = { type: 'report' } | { type: 'storm'; ms: number } | { type: 'stop' };

const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as SimSpec;
const hub = new URL(spec.hub);
const send = (m: unknown): void => void process.send!(m);
// Like undici in a real agent: a kept-alive connection per agent for its reports.
const pool = new HttpAgent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: spec.sims.length });
const now = (): number => performance.timeOrigin + performance.now();
let stopping = false;

function fail(what: string): void {
  if (!stopping) send({ type: 'failure', what });
}

/** The shape of a real agent's /status document (src/agent/site-status.ts), about 2 KiB. */
function statusDoc(site: string, health: string, commit: string, version: string, phase: string): string {
  const at = new Date().toISOString();
  const cond = (type: string, status: boolean, reason: string, message = ''): object => ({ type, status, reason, message, since: at });
  return JSON.stringify({
    site,
    agent: { version: '0.1.0', pid: process.pid, startedAt: at },
    registry: `${spec.hub}/${spec.repo}.git`,
    branch: 'main',
    health,
    conditions: [cond('Ready', health === 'Ready', health === 'Ready' ? 'InSync' : 'Progressing', `model ${version} active`), cond('Degraded', false, 'Healthy'), cond('Conflict', false, 'None'), cond('Waiting', false, 'None'), cond('Stale', false, 'Fresh'), cond('HubConnected', true, 'Subscribed')],
    phase,
    commit,
    appliedCommit: health === 'Ready' ? commit : null,
    lastPass: { startedAt: at, finishedAt: at, status: 'changed', durationMs: 412, triggers: ['event'], changed: [{ model: 'model', from: null, to: version }], rolledBack: [], conflicts: [], degraded: [], errors: [], bytesFetched: 1048576 },
    lastSuccessAt: at,
    lastFetchAt: at,
    stalenessSeconds: 0,
    staleAfterSeconds: 1830,
    schedule: '*/15 * * * *',
    nextScheduledAt: at,
    models: [{ model: 'model', declared: version, desired: version, active: health === 'Ready' ? version : null, outcome: health === 'Ready' ? 'changed' : 'pending', reason: 'registry', detail: '' }],
    unmanaged: [],
    services: [],
    serviceProblems: [],
    templates: { rendered: 0, changed: 0 },
    selfHeal: { healed: 0 },
    hub: { url: spec.hub, connected: true, lastReportAt: at, lastReportError: null },
    lastError: null,
  });
}

function post(site: string, token: string, body: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      { host: hub.hostname, port: hub.port, path: `/api/v1/sites/${encodeURIComponent(site)}/status`, method: 'POST', agent: pool, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${token}` } },
      (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) fail(`POST status for ${site}: HTTP ${res.statusCode}`);
          resolve(res.statusCode === 200);
        });
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('no answer in 30 s')));
    req.on('error', (err) => {
      fail(`POST status for ${site}: ${err.message}`);
      resolve(false);
    });
    req.end(body);
  });
}

class Sim {
  version = '1';
  commit = spec.commit;
  private res: IncomingMessage | undefined;
  private buf = '';
  constructor(readonly site: string, readonly token: string, private readonly onRef: (sim: Sim, after: string, at: number) => void) {}

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request({ host: hub.hostname, port: hub.port, path: `/api/v1/events?repo=${spec.repo}`, agent: false, headers: { accept: 'text/event-stream', authorization: `Bearer ${this.token}` } }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`events for ${this.site}: HTTP ${res.statusCode}`));
          return;
        }
        this.res = res;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => this.data(chunk));
        res.on('close', () => fail(`event stream of ${this.site} ended`));
        resolve();
      });
      req.on('error', (err) => {
        fail(`event stream of ${this.site}: ${err.message}`);
        reject(err);
      });
      req.end();
    });
  }

  private data(chunk: string): void {
    this.buf += chunk;
    let sep: number;
    while ((sep = this.buf.indexOf('\n\n')) >= 0) {
      const block = this.buf.slice(0, sep);
      this.buf = this.buf.slice(sep + 2);
      if (!block.includes('event: ref')) continue;
      const line = block.split('\n').find((l) => l.startsWith('data: '));
      if (!line) continue;
      const e = JSON.parse(line.slice(6)) as { ref: string; after: string };
      if (e.ref === 'refs/heads/main') this.onRef(this, e.after, now());
    }
  }

  report(health = 'Ready', phase = 'idle'): Promise<boolean> {
    return post(this.site, this.token, statusDoc(this.site, health, this.commit, this.version, phase));
  }

  close(): void {
    this.res?.destroy();
  }
}

const got = new Map<string, number[]>();
const passed = new Map<string, number>();
const sims = spec.sims.map((s) => new Sim(s.site, s.token, (sim, after, at) => {
  const times = got.get(after) ?? [];
  times.push(at);
  got.set(after, times);
  if (times.length === sims.length) send({ type: 'got', after, times });
  // A pass: Progressing at once, Ready with the new commit when it is done.
  void (async () => {
    await sim.report('Progressing', 'pass');
    await new Promise((r) => setTimeout(r, spec.passMinMs + Math.random() * (spec.passMaxMs - spec.passMinMs)));
    sim.commit = after;
    sim.version = String(Number(sim.version) + 1);
    await sim.report('Ready', 'idle');
    const n = (passed.get(after) ?? 0) + 1;
    passed.set(after, n);
    if (n === sims.length) send({ type: 'passed', after });
  })();
}));

// Open the streams a few at a time: a real fleet does not connect in one millisecond either.
for (let i = 0; i < sims.length; i += 50) await Promise.all(sims.slice(i, i + 50).map((s) => s.open()));
send({ type: 'connected' });

process.on('message', (m: FromParent) => {
  if (m.type === 'report') {
    void Promise.all(sims.map((s) => s.report())).then(() => send({ type: 'reported' }));
  } else if (m.type === 'storm') {
    const end = Date.now() + m.ms;
    let count = 0;
    void Promise.all(sims.map(async (s) => {
      while (Date.now() < end) if (await s.report()) count += 1;
    })).then(() => send({ type: 'stormed', count }));
  } else if (m.type === 'stop') {
    stopping = true;
    for (const s of sims) s.close();
    pool.destroy();
    process.disconnect();
  }
});
process.on('disconnect', () => {
  stopping = true;
  for (const s of sims) s.close();
  pool.destroy();
});
