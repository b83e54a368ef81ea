/**
 * How fast the hub serves an LFS object, against a plain static file server
 * on the same machine in the same run, and how much memory it takes to do it.
 *
 * - The hub runs as its own process (`node bin/modelsync.js serve`), with a
 *   tokens file, exactly as an operator runs it; objects are uploaded through
 *   its LFS API (curl PUT to the batch href), so the bench also reports upload
 *   throughput (hashing while streaming + fsync).
 * - Downloads: `curl -o /dev/null` of the batch API's download href and of
 *   the same file from `python3 -m http.server` (a minimal node static server
 *   when python3 is missing), taking turns, best of five each.
 * - Peak RSS: a fresh hub process per size, VmHWM from /proc/<pid>/status after
 *   serving one object of sizeMb/4 and one of sizeMb; flat means streaming.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { BenchContext, BenchReport, BenchRow } from './run.ts';
import { MiB, makeFile, startHub, vmHwmKiB } from './common.ts';

// Downloads per contender; the best counts (the machine is shared, noise only slows things down).
const ROUNDS = 5;

/** `mb` MiB of incompressible bytes (common.ts makeFile), as an LFS object. */
async function makeObject(path: string, mb: number): Promise<{ oid: string; size: number }> {
  return { oid: await makeFile(path, mb * MiB, mb), size: mb * MiB };
}

interface CurlResult {
  bytes: number;
  seconds: number;
}

function curl(args: string[]): CurlResult {
  const r = spawnSync('curl', ['-sS', '--fail', '-w', '%{size_download} %{size_upload} %{time_total}', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`curl ${args.filter((a) => !a.startsWith('Authorization')).join(' ')} failed: ${r.stderr}`);
  const [down, up, t] = r.stdout.trim().split(' ').map(Number);
  return { bytes: Math.max(down!, up!), seconds: t! };
}

/**
 * Best throughput (MiB/s) of each contender over `rounds` rounds, taking turns
 * so both see the same background load on a shared machine.
 */
function bestInTurns(rounds: number, contenders: Array<() => CurlResult>, expectBytes: number): number[] {
  const best = contenders.map(() => 0);
  for (let i = 0; i < rounds; i++) {
    contenders.forEach((run, k) => {
      const r = run();
      if (r.bytes !== expectBytes) throw new Error(`transferred ${r.bytes} bytes, expected ${expectBytes}`);
      best[k] = Math.max(best[k]!, r.bytes / MiB / r.seconds);
    });
  }
  return best;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** python3 -m http.server when available, else a minimal node static server; both serve `dir`. */
async function startStaticServer(dir: string): Promise<{ url: string; kind: string; stop: () => void }> {
  const port = await freePort();
  const python = spawnSync('python3', ['--version'], { encoding: 'utf8' }).status === 0;
  let child: ChildProcess;
  let kind: string;
  if (python) {
    kind = 'python3 -m http.server';
    child = spawn('python3', ['-m', 'http.server', '--bind', '127.0.0.1', '--directory', dir, String(port)], { stdio: 'ignore' });
  } else {
    kind = 'minimal node static server (createReadStream | res)';
    const script = `
      const http = require('http'), fs = require('fs'), path = require('path');
      http.createServer((req, res) => {
        const p = path.join(${JSON.stringify(dir)}, decodeURIComponent(req.url.split('?')[0]));
        fs.stat(p, (err, st) => {
          if (err || !st.isFile()) { res.writeHead(404); return res.end(); }
          res.writeHead(200, { 'Content-Length': st.size, 'Content-Type': 'application/octet-stream' });
          fs.createReadStream(p).pipe(res);
        });
      }).listen(${port}, '127.0.0.1');`;
    child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  }
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const r = spawnSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `${url}/`], { encoding: 'utf8' });
    if (r.stdout !== '000') return { url, kind, stop: () => child.kill('SIGTERM') };
    await new Promise((r2) => setTimeout(r2, 100));
  }
  child.kill('SIGTERM');
  throw new Error(`${kind} did not start`);
}

async function batchHref(hubUrl: string, secret: string, operation: 'upload' | 'download', obj: { oid: string; size: number }): Promise<{ href: string; auth: string }> {
  const res = await fetch(`${hubUrl}/bench.git/info/lfs/objects/batch`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/vnd.git-lfs+json', Accept: 'application/vnd.git-lfs+json' },
    body: JSON.stringify({ operation, transfers: ['basic'], objects: [obj] }),
  });
  if (res.status !== 200) throw new Error(`batch ${operation}: HTTP ${res.status}`);
  const o = ((await res.json()) as { objects: Array<{ actions?: Record<string, { href: string; header?: Record<string, string> }>; error?: { message: string } }> }).objects[0]!;
  const action = o.actions?.[operation];
  if (!action) throw new Error(`batch ${operation}: no ${operation} action (${o.error?.message ?? 'already stored?'})`);
  return { href: action.href, auth: action.header?.Authorization ?? '' };
}

export default async function hubServeBench(ctx: BenchContext): Promise<BenchReport> {
  const rows: BenchRow[] = [];
  const work = join(ctx.workDir, 'run');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const data = join(work, 'data');
  const secret = randomBytes(24).toString('hex');
  const tokens = join(work, 'tokens.yaml');
  writeFileSync(tokens, `tokens:\n  - {name: bench, sha256: ${createHash('sha256').update(secret).digest('hex')}, role: publisher}\n`);

  const sizes = [...new Set([Math.max(1, Math.round(ctx.sizeMb / 4)), ctx.sizeMb])];
  try {
    // 1. Objects into the hub through its own upload path.
    const objects: Array<{ mb: number; oid: string; size: number }> = [];
    const uploader = await startHub(data, tokens);
    try {
      for (const mb of sizes) {
        const src = join(work, `src-${mb}.bin`);
        ctx.log(`writing a ${mb} MiB object`);
        const obj = await makeObject(src, mb);
        const { href, auth } = await batchHref(uploader.url, secret, 'upload', obj);
        const r = curl(['-o', '/dev/null', '-T', src, '-H', `Authorization: ${auth}`, href]);
        rows.push({ metric: `hub upload, ${mb} MiB`, value: Math.round(r.bytes / MiB / r.seconds), unit: 'MiB/s', note: 'curl -T to the batch href; sha256 while streaming, fsync, rename' });
        rmSync(src);
        objects.push({ mb, ...obj });
      }
    } finally {
      await uploader.stop();
    }

    // 2. Per size: a fresh hub process, best-of-3 download, its peak RSS; the static server on the same file.
    const objectsDir = join(data, 'repos', 'bench.git', 'lfs', 'objects');
    const stat = await startStaticServer(objectsDir);
    try {
      for (const o of objects) {
        const hub = await startHub(data, tokens);
        try {
          const idle = vmHwmKiB(hub.child.pid!);
          const { href, auth } = await batchHref(hub.url, secret, 'download', o);
          const rel = `${o.oid.slice(0, 2)}/${o.oid.slice(2, 4)}/${o.oid}`;
          if (!existsSync(join(objectsDir, rel))) throw new Error('object missing from the hub layout');
          const [hubMiBs, staticMiBs] = bestInTurns(
            ROUNDS,
            [() => curl(['-o', '/dev/null', '-H', `Authorization: ${auth}`, href]), () => curl(['-o', '/dev/null', `${stat.url}/${rel}`])],
            o.size,
          ) as [number, number];
          const peak = vmHwmKiB(hub.child.pid!);
          ctx.log(`${o.mb} MiB: hub ${hubMiBs.toFixed(0)} MiB/s, static ${staticMiBs.toFixed(0)} MiB/s, hub peak RSS ${(peak / 1024).toFixed(1)} MiB`);
          rows.push(
            { metric: `hub download, ${o.mb} MiB`, value: Math.round(hubMiBs), unit: 'MiB/s', note: `curl -o /dev/null of the LFS download href, best of ${ROUNDS} (turns with the static server)` },
            { metric: `static server, ${o.mb} MiB`, value: Math.round(staticMiBs), unit: 'MiB/s', note: `${stat.kind}, same file, best of ${ROUNDS}` },
            { metric: `ratio hub / static, ${o.mb} MiB`, value: (hubMiBs / staticMiBs).toFixed(2), note: 'target ≥ 0.8' },
            { metric: `hub peak RSS serving ${o.mb} MiB`, value: (peak / 1024).toFixed(1), unit: 'MiB', note: `VmHWM of the serve process (idle after start: ${(idle / 1024).toFixed(1)} MiB); flat across sizes = streaming` },
          );
        } finally {
          await hub.stop();
        }
      }
    } finally {
      stat.stop();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { name: 'hub: serving an LFS object (modelsync serve vs a static file server)', rows };
}
