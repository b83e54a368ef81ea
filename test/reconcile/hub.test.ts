/**
 * End to end: a registry pushed to the real hub (`startTestHub`) with the
 * stock git + git-lfs clients, changed the way a team changes it (commits,
 * `git revert`, force pushes), and sites reconciling from it over HTTP with
 * the real LFS client.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { buildChunkIndex } from '../../src/lfs/cdc.ts';
import pino from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { reconcile, type ReconcileOptions } from '../../src/reconcile/index.ts';
import { CLI, cliAsync, gitAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub, type TestHub } from '../helpers/hub.ts';
import { TestRegistry, sha256 } from './helpers/registry.ts';

const env = isolatedGitEnv();

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed * 7 + (i >> 8)) & 0xff;
  return b;
}

let th: TestHub;
let reg: TestRegistry;
let store: string;
let repoCounter = 0;
let repo: string;

const push = async (...extra: string[]) => gitAsync(['push', '-q', ...extra, 'origin', 'main'], { cwd: reg.dir, env });
const registryUrl = (): string => `${th.url}/${repo}.git`;
const pass = (extra: Partial<ReconcileOptions> = {}) =>
  reconcile({ site: 'alpha', registry: registryUrl(), store, token: th.secrets.bySite.alpha, ...extra });
const current = (model: string, s = store): string | undefined => {
  try {
    return readlinkSync(join(s, 'models', model, 'current'));
  } catch {
    return undefined;
  }
};

beforeEach(async () => {
  th ??= await startTestHub({ tokens: true, sites: ['alpha', 'beta'] });
  repo = `registry${++repoCounter}`;
  reg = TestRegistry.init(tempDir('hub-reg-'), env);
  reg.addVersion('face', '2025-01-01', { 'model.bin': bytes(300_000, 1), 'labels.txt': 'cat\ndog\n' });
  reg.addVersion('face', '2025-02-01', { 'model.bin': bytes(400_000, 2), 'labels.txt': 'cat\ndog\n' });
  reg.addVersion('ssd', '1', { 'w.bin': bytes(100_000, 3) });
  reg.addVersion('ssd', '2', { 'w.bin': bytes(100_000, 4) });
  reg.setCurrent('face', '2025-01-01');
  reg.setCurrent('ssd', '1');
  reg.site('alpha', { retention: { keep: 3 } });
  reg.site('beta', { models: ['face'], overrides: { face: '2025-02-01' } });
  reg.commit('initial registry');
  reg.git('remote', 'add', 'origin', th.repoUrl(repo, th.secrets.publisher));
  await push('-u');
  store = join(tempDir('hub-store-'), 'store');
});

describe('reconcile from the hub', () => {
  it('initial sync, upgrade by a pushed commit, rollback by a pushed git revert', async () => {
    const first = await pass();
    expect(first.errors).toEqual([]);
    expect(first.status).toBe('changed');
    expect(first.commit).toBe(reg.head());
    expect(current('face')).toBe('2025-01-01');
    expect(readFileSync(join(store, 'models/face/current/model.bin')).equals(bytes(300_000, 1))).toBe(true);
    expect(first.bytesFetched).toBe(300_000 + 8 + 100_000);
    // The registry clone is kept in the store, bare and shallow, without the token anywhere.
    expect(existsSync(join(store, 'registry.git/shallow'))).toBe(true);
    const secret = th.secrets.bySite.alpha!;
    expect(readFileSync(join(store, 'registry.git/config'), 'utf8')).not.toContain(secret);
    expect(readFileSync(join(store, 'state.json'), 'utf8')).not.toContain(secret);

    reg.setCurrent('face', '2025-02-01');
    reg.commit('promote face 2025-02-01');
    await push();
    const up = await pass();
    expect(up.changed).toEqual([{ model: 'face', from: '2025-01-01', to: '2025-02-01' }]);
    expect(up.bytesFetched).toBe(400_000); // labels.txt is shared: not fetched again
    expect(current('face')).toBe('2025-02-01');

    reg.git('revert', '--no-edit', 'HEAD');
    await push();
    const back = await pass();
    expect(back.models.find((m) => m.model === 'face')).toMatchObject({ reason: 'rollback', outcome: 'activated' });
    expect(current('face')).toBe('2025-01-01');
    expect(back.bytesFetched).toBe(0);

    const idle = await pass();
    expect(idle.status).toBe('in-sync');
    expect(idle.bytesFetched).toBe(0);
  });

  it('downloads only the changed ranges of a file that has a chunk index (delta against the version in the store)', async () => {
    // 6 MiB of non-repeating bytes; v2 inserts 10 KiB in the middle.
    const v1 = Buffer.concat(Array.from({ length: 6 * 32 }, (_, i) => createHash('sha256').update(`block ${i}`).digest()).flatMap((h) => Array.from({ length: 1024 }, (_, j) => createHash('sha256').update(h).update(String(j)).digest())));
    const v2 = Buffer.concat([v1.subarray(0, 3 << 20), Buffer.alloc(10 * 1024, 7), v1.subarray(3 << 20)]);
    const tmp = join(tempDir(), 'v2.bin');
    writeFileSync(tmp, v2);
    const index = await buildChunkIndex(tmp);
    reg.addVersion('big', '1', { 'w.bin': v1 });
    reg.addVersion('big', '2', { 'w.bin': v2 }, {}, { 'w.bin': { chunks: { oid: index.oid, size: index.size } } });
    reg.setCurrent('big', '1');
    reg.commit('big 1 and 2');
    await push();
    // The chunk index is an LFS object no commit points to: put it in git-lfs's cache and push it by id.
    mkdirSync(dirname(reg.lfsObject(index.oid)), { recursive: true });
    writeFileSync(reg.lfsObject(index.oid), index.bytes);
    await gitAsync(['lfs', 'push', '--object-id', 'origin', index.oid], { cwd: reg.dir, env });
    await pass();
    expect(current('big')).toBe('1');

    reg.setCurrent('big', '2');
    reg.commit('promote big 2');
    await push();
    const lines: string[] = [];
    const r = await pass({ logger: pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) }) });
    expect(r.errors).toEqual([]);
    expect(readFileSync(join(store, 'models/big/current/w.bin')).equals(v2)).toBe(true);
    expect(lines.join('')).toContain('chunk delta: object assembled');
    expect(r.bytesFetched).toBeLessThan(1 << 20); // not the 6 MiB file
  });

  it('resumes a download cut by kill -9 from its partial file; nothing partial under models/', async () => {
    const big = Buffer.alloc(24 << 20);
    for (let off = 0, i = 0; off < big.length; off += 32, i++) createHash('sha256').update(`r${i}`).digest().copy(big, off);
    expect(big.length).toBe(24 << 20);
    reg.addVersion('huge', '1', { 'w.bin': big });
    reg.setCurrent('huge', '1');
    reg.site('alpha', { models: ['huge'], bandwidth: { limit_kbps: 32_000 } }); // ~4 MB/s: about 6 s for 24 MiB
    reg.commit('huge 1, bandwidth capped');
    await push();
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [CLI, 'reconcile', '--site', 'alpha', '--registry', registryUrl(), '--store', store], {
      env: { ...env, MODELSYNC_TOKEN: th.secrets.bySite.alpha },
      stdio: 'ignore',
    });
    const part = (): string | undefined => readdirSync(join(store, 'tmp/downloads')).find((n) => n.endsWith('.part'));
    const deadline = Date.now() + 30_000;
    // Wait until a few MiB are on disk, then kill without warning.
    for (;;) {
      const p = existsSync(join(store, 'tmp/downloads')) ? part() : undefined;
      if (p && statSync(join(store, 'tmp/downloads', p)).size > 4 << 20) break;
      if (Date.now() > deadline) throw new Error('download never started');
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const have = statSync(join(store, 'tmp/downloads', part()!)).size;
    expect(existsSync(join(store, 'models/huge'))).toBe(false);

    reg.site('alpha', { models: ['huge'] });
    reg.commit('lift the cap');
    await push();
    const r = await pass();
    expect(r.errors).toEqual([]);
    expect(readFileSync(join(store, 'models/huge/current/w.bin')).equals(big)).toBe(true);
    expect(r.bytesFetched).toBeLessThanOrEqual(big.length - have + (1 << 20)); // resumed, not restarted
    expect(readdirSync(join(store, 'tmp/downloads'))).toEqual([]);
  });

  it('follows a force-pushed branch', async () => {
    await pass();
    reg.setCurrent('ssd', '2');
    reg.git('add', '-A');
    reg.git('commit', '-q', '--amend', '-m', 'rewritten history: ssd 2');
    await push('--force');
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) });
    const r = await pass({ logger });
    expect(r.errors).toEqual([]);
    // Fetched incrementally into the kept clone, not by throwing the cache away.
    expect(lines.join('')).not.toContain('cloning again');
    expect(lines.join('')).toContain('registry fetched');
    expect(r.commit).toBe(reg.head());
    expect(current('ssd')).toBe('2');
  });

  it('fetches only what changed since the cached commit, not the whole tree again', async () => {
    await pass();
    const packs = join(store, 'registry.git/objects/pack');
    const before = new Set(readdirSync(packs));
    reg.setCurrent('ssd', '2');
    reg.commit('ssd 2');
    await push();
    const r = await pass();
    expect(r.errors).toEqual([]);
    expect(current('ssd')).toBe('2');
    const added = readdirSync(packs).filter((n) => n.endsWith('.pack') && !before.has(n));
    expect(added).toHaveLength(1);
    const sent = readFileSync(join(packs, added[0]!)).readUInt32BE(8); // the pack header's object count
    // A depth-1 fetch sends the new commit with its whole tree, every manifest and pointer.
    const wholeTree = reg.git('ls-tree', '-r', '-t', 'HEAD').split('\n').length + 2; // + the commit and its root tree
    expect(sent).toBeLessThan(wholeTree / 2);
  });

  it('follows a branch force-pushed back to an older commit the cache never had', async () => {
    const older = reg.head();
    reg.setCurrent('ssd', '2');
    reg.git('add', '-A');
    // Dated an hour ahead, so the older commit is before the cached tip by any clock.
    await gitAsync(['commit', '-q', '-m', 'ssd 2'], { cwd: reg.dir, env: { ...env, GIT_COMMITTER_DATE: new Date(Date.now() + 3600_000).toISOString() } });
    await push();
    expect((await pass()).commit).toBe(reg.head());
    reg.git('reset', '-q', '--hard', older);
    await push('--force');
    const lines: string[] = [];
    const r = await pass({ logger: pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) }) });
    expect(r.errors).toEqual([]);
    expect(r.commit).toBe(older);
    expect(current('ssd')).toBe('1');
    // The fetch since the cached tip brought nothing usable; the depth-1 fetch did.
    expect(lines.join('')).toContain('fetching it at depth 1');
    expect(lines.join('')).not.toContain('cloning again');
  });

  it('starts the registry cache over when the site follows another registry URL', async () => {
    await pass();
    const moved = `${repo}-moved`;
    reg.setCurrent('ssd', '2');
    reg.commit('ssd 2, on the new registry only');
    await gitAsync(['push', '-q', th.repoUrl(moved, th.secrets.publisher), 'main'], { cwd: reg.dir, env });
    const r = await reconcile({ site: 'alpha', registry: `${th.url}/${moved}.git`, store, token: th.secrets.bySite.alpha });
    expect(r.errors).toEqual([]);
    expect(r.commit).toBe(reg.head());
    expect(current('ssd')).toBe('2');
    expect(readFileSync(join(store, 'registry.git/config'), 'utf8')).toContain(`${moved}.git`);
  });

  it('applies selection and overrides per site', async () => {
    const beta = await reconcile({ site: 'beta', registry: registryUrl(), store, token: th.secrets.bySite.beta });
    expect(beta.errors).toEqual([]);
    expect(beta.models.map((m) => [m.model, m.desired, m.desiredReason])).toEqual([['face', '2025-02-01', 'override']]);
    expect(current('face')).toBe('2025-02-01');
    expect(existsSync(join(store, 'models/ssd'))).toBe(false);
  });

  it('reports a hand-made newer version as a conflict (exit 3) and applies the declared one with --force (CLI)', async () => {
    reg.setCurrent('face', '2025-02-01');
    reg.commit('promote');
    await push();
    await pass();
    reg.git('revert', '--no-edit', 'HEAD');
    await push();
    await pass();
    // Operator switches the site by hand to the newer version.
    const { symlinkSync, renameSync } = await import('node:fs');
    symlinkSync('2025-02-01', join(store, 'models/face/.hand'));
    renameSync(join(store, 'models/face/.hand'), join(store, 'models/face/current'));
    const tokenFile = join(tempDir(), 'token');
    writeFileSync(tokenFile, `${th.secrets.bySite.alpha}\n`);
    const args = ['reconcile', '--site', 'alpha', '--registry', registryUrl(), '--store', store, '--token-file', tokenFile];
    const conflict = await cliAsync(args, { cwd: reg.dir, env });
    expect(conflict.status).toBe(3);
    expect(conflict.stdout).toMatch(/face\s+2025-02-01\s+CONFLICT/);
    expect(conflict.stdout).toContain('--force');
    expect(current('face')).toBe('2025-02-01');
    const json = await cliAsync([...args, '--json'], { cwd: reg.dir, env });
    expect(JSON.parse(json.stdout)).toMatchObject({ status: 'conflict', exitCode: 3, conflicts: [{ model: 'face', active: '2025-02-01', declared: '2025-01-01' }] });
    const forced = await cliAsync([...args, '--force'], { cwd: reg.dir, env });
    expect(forced.status).toBe(0);
    expect(current('face')).toBe('2025-01-01');
    for (const out of [conflict, json, forced]) expect(out.stdout + out.stderr).not.toContain(th.secrets.bySite.alpha!);
  });

  it('refuses an object corrupted on the server: checksum error, previous version stays current', async () => {
    await pass();
    reg.setCurrent('face', '2025-02-01');
    reg.commit('promote');
    await push();
    const oid = sha256(bytes(400_000, 2));
    const onServer = join(th.data, 'repos', `${repo}.git`, 'lfs', 'objects', oid.slice(0, 2), oid.slice(2, 4), oid);
    chmodSync(onServer, 0o644);
    writeFileSync(onServer, bytes(400_000, 99));
    const r = await pass();
    expect(r.status).toBe('failed');
    const face = r.models.find((m) => m.model === 'face')!;
    expect(face.outcome).toBe('failed');
    expect(face.error?.code).toBe('ChecksumError');
    expect(face.error?.message).toMatch(/checksum/i);
    expect(current('face')).toBe('2025-01-01');
    expect(existsSync(join(store, 'models/face/2025-02-01'))).toBe(false);
    expect(readdirSync(join(store, 'objects/sha256'), { recursive: true }).some((p) => String(p).endsWith(oid))).toBe(false);
  });

  it('changes nothing when the pushed registry is invalid, naming file and line', async () => {
    await pass();
    const state = readFileSync(join(store, 'state.json'), 'utf8');
    reg.write('registry/model_registry.yaml', 'models:\n  face:\n    current_version: "2025-02-01"\n    curent_version: "x"\n  ssd:\n    current_version: "1"\n');
    reg.commit('typo');
    await push();
    const r = await pass();
    expect(r.status).toBe('failed');
    expect(r.errors[0]!.code).toBe('ValidationError');
    expect(r.errors[0]!.message).toMatch(/registry\/model_registry\.yaml:4:\d+/);
    expect(current('face')).toBe('2025-01-01');
    expect(JSON.parse(readFileSync(join(store, 'state.json'), 'utf8')).appliedCommit).toBe(JSON.parse(state).appliedCommit);
  });

  it('accepts credentials in the registry URL and keeps them out of the result, state and clone config', async () => {
    const secret = th.secrets.bySite.alpha!;
    const r = await reconcile({ site: 'alpha', registry: th.repoUrl(repo, secret), store });
    expect(r.errors).toEqual([]);
    expect(r.registry).toBe(registryUrl());
    for (const text of [JSON.stringify(r), readFileSync(join(store, 'state.json'), 'utf8'), readFileSync(join(store, 'registry.git/config'), 'utf8')]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(encodeURIComponent(secret));
    }
  });

  it('sends its token up front: a pass with a token costs the hub no 401 challenge', async () => {
    const missing = async (): Promise<number> => {
      const text = await (await fetch(`${th.url}/metrics`, { headers: { authorization: `Bearer ${th.secrets.admin}` } })).text();
      const m = /^modelsync_hub_auth_failures_total\{[^}]*reason="missing"[^}]*\} (\d+)/m.exec(text);
      return m ? Number(m[1]) : 0;
    };
    await pass();
    const before = await missing();
    const r = await pass();
    expect(r.errors).toEqual([]);
    expect(await missing()).toBe(before);
  });

  it('refuses a wrong token with an AuthError that does not echo it', async () => {
    const r = await pass({ token: 'not-the-token' });
    expect(r.errors[0]!.code).toBe('AuthError');
    expect(r.errors[0]!.message).toContain('the server refused our credentials (HTTP 401)');
    expect(JSON.stringify(r)).not.toContain('not-the-token');
    expect(existsSync(join(store, 'models/face'))).toBe(false);
  });

  it('without a token, the AuthError says none was given and how to give one', async () => {
    const r = await pass({ token: undefined });
    expect(r.errors[0]!.code).toBe('AuthError');
    expect(r.errors[0]!.message).toMatch(/the server needs credentials and no token was given \(--token-file or token_file in agent.yaml, MODELSYNC_TOKEN_FILE, MODELSYNC_TOKEN/);
    expect(existsSync(join(store, 'models/face'))).toBe(false);
  });
});

describe('hub unreachable', () => {
  it('a server that accepts connections and never answers fails the pass after the timeout, lock released', async () => {
    await pass();
    const { createServer } = await import('node:net');
    const sockets: import('node:net').Socket[] = [];
    const silent = createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as { port: number }).port;
    try {
      const t = Date.now();
      const r = await reconcile({ site: 'alpha', registry: `http://127.0.0.1:${port}/registry.git`, store, networkTimeoutMs: 500 });
      expect(Date.now() - t).toBeLessThan(10_000);
      expect(r.errors[0]).toMatchObject({ code: 'NetworkError' });
      expect(r.errors[0]!.message).toMatch(/no data from http:\/\/127\.0\.0\.1:\d+ for 0\.5 s/);
      expect(existsSync(join(store, 'lock'))).toBe(false);
      expect(current('face')).toBe('2025-01-01');
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it('is a clear network error and leaves the store as it was', async () => {
    await pass();
    const hubUrl = registryUrl();
    const local = await startTestHub({ tokens: false });
    const deadUrl = `${local.url}/${repo}.git`;
    await local.close();
    const before = readdirSync(join(store, 'models/face')).sort();
    const r = await reconcile({ site: 'alpha', registry: deadUrl, store, token: 'x' });
    expect(r.status).toBe('failed');
    expect(r.errors[0]).toMatchObject({ code: 'NetworkError' });
    expect(r.errors[0]!.message).toMatch(/cannot reach the server \(ECONNREFUSED\)/);
    expect(readdirSync(join(store, 'models/face')).sort()).toEqual(before);
    expect(current('face')).toBe('2025-01-01');
    void hubUrl;
  });

  it('a pass told the new tip (a hub event) fetches it without listing refs first; a wrong hint costs nothing but a listing', async () => {
    // A counting proxy in front of the hub: how many ref advertisements (GET …/info/refs) does a pass ask for?
    const { createServer } = await import('node:http');
    const hub = new URL(th.url);
    let advertisements = 0;
    const proxy = createServer((req, res) => {
      void (async () => {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        const r = await fetch(`${hub.origin}${req.url}`, { method: req.method, headers: req.headers as Record<string, string>, body: chunks.length ? Buffer.concat(chunks) : undefined, redirect: 'manual' });
        // Answered ones only: git asks without credentials first and again after the 401.
        if (req.method === 'GET' && /\/info\/refs\?/.test(req.url ?? '') && r.status === 200) advertisements++;
        const headers: Record<string, string> = {};
        r.headers.forEach((v, k) => {
          if (k !== 'content-encoding' && k !== 'transfer-encoding' && k !== 'content-length') headers[k] = v;
        });
        res.writeHead(r.status, headers);
        res.end(Buffer.from(await r.arrayBuffer()));
      })().catch(() => res.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    const via = `http://127.0.0.1:${(proxy.address() as { port: number }).port}/${repo}.git`;
    try {
      expect((await pass({ registry: via })).errors).toEqual([]);
      reg.setCurrent('face', '2025-02-01');
      reg.commit('promote face');
      await push();
      advertisements = 0;
      const hinted = await pass({ registry: via, expectedCommit: reg.head() });
      expect(hinted.errors).toEqual([]);
      expect(hinted.commit).toBe(reg.head());
      expect(current('face')).toBe('2025-02-01');
      expect(advertisements).toBe(1); // the fetch's own; no listing before it
      // A hint the cache already has, or one that names nothing: the usual listing decides.
      advertisements = 0;
      expect((await pass({ registry: via, expectedCommit: reg.head() })).status).toBe('in-sync');
      expect(advertisements).toBe(1);
      expect((await pass({ registry: via, expectedCommit: 'f'.repeat(40) })).status).toBe('in-sync');
    } finally {
      proxy.close();
    }
  });
});
