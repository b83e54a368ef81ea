/**
 * A site against Git hosts and LFS servers we did not write, each behaviour
 * reproduced by test/lfs/server.ts the way the real hosts have it (docs/lfs.md,
 * "Other hosts"), with Git served by stock `git http-backend` from a bare
 * repository made with `git init --bare` (HEAD -> master, only `main` pushed).
 * Every scenario: a first sync of a 16 MiB model, then a chunk delta for a
 * small edit of it.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, afterEach, describe, expect, it } from 'vitest';
import { reconcile, type ReconcileResult } from '../../src/reconcile/index.ts';
import { cliAsync, gitAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { LfsTestServer, type LfsTestServerOptions } from './server.ts';

const SIZE = 16 << 20;
const TOKEN = 'host-token-4f9a2c';

/** `n` bytes that never repeat (so chunks are unique), reproducible. */
function noise(n: number, seed: string): Buffer {
  const out = Buffer.alloc(n);
  for (let off = 0, i = 0; off < n; off += 32, i++) createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off);
  return out;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

let env: NodeJS.ProcessEnv;
let repo: string;
let noHooks: string;
let c1: string;
let c2: string;
let v2: Buffer;
let lfsObjects: string[];

beforeAll(async () => {
  env = { ...isolatedGitEnv(), MODELSYNC_NO_AUTOPUSH: '1' };
  const root = tempDir('foreign-host-');
  repo = join(root, 'reg');
  noHooks = join(root, 'no-hooks');
  mkdirSync(noHooks);
  const run = async (args: string[]) => {
    const r = await cliAsync(args, { cwd: repo, env });
    if (r.status !== 0) throw new Error(`modelsync ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  };
  expect((await cliAsync(['init', repo, '--bare-example'], { cwd: root, env })).status).toBe(0);
  const v1 = noise(SIZE, 'v1');
  writeFileSync(join(root, 'w.bin'), v1);
  await run(['publish', 'big', '1', join(root, 'w.bin')]);
  writeFileSync(join(repo, 'sites/alpha.yaml'), 'models: [big]\n');
  await gitAsync(['add', 'sites/alpha.yaml'], { cwd: repo, env });
  await gitAsync(['commit', '-q', '-m', 'site alpha runs big'], { cwd: repo, env });
  c1 = (await gitAsync(['rev-parse', 'HEAD'], { cwd: repo, env })).stdout.trim();
  // A small edit: 1 KiB inserted in the middle, a word changed near the start.
  v2 = Buffer.concat([v1.subarray(0, 8 << 20), noise(1024, 'insert'), v1.subarray(8 << 20)]);
  v2.write('edited', 100_000);
  writeFileSync(join(root, 'w.bin'), v2);
  await run(['publish', 'big', '2', join(root, 'w.bin')]);
  c2 = (await gitAsync(['rev-parse', 'HEAD'], { cwd: repo, env })).stdout.trim();
  lfsObjects = filesUnder(join(repo, '.git/lfs/objects'));
}, 120_000);

const servers: LfsTestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

interface Host {
  server: LfsTestServer;
  bare: string;
  /** Point `main` of the bare repository at a commit, with stock git push. */
  publish(commit: string): Promise<void>;
}

/** A host: a bare repository made by `git init --bare` (HEAD names master, which never exists), served with these behaviours. */
async function host(options: LfsTestServerOptions): Promise<Host> {
  const gitRoot = tempDir('foreign-git-');
  const bare = join(gitRoot, 'repo.git');
  await gitAsync(['init', '-q', '--bare', bare], { cwd: gitRoot, env });
  // What `git init --bare` gives without an init.defaultBranch setting.
  await gitAsync(['symbolic-ref', 'HEAD', 'refs/heads/master'], { cwd: bare, env });
  const server = await LfsTestServer.start({ token: TOKEN, gitRoot, ...options });
  servers.push(server);
  for (const file of lfsObjects) server.addFile(file.split('/').pop()!, file);
  return {
    server,
    bare,
    publish: async (commit) => {
      await gitAsync(['-c', `core.hooksPath=${noHooks}`, 'push', '-q', '-f', bare, `${commit}:refs/heads/main`], { cwd: repo, env });
    },
  };
}

/** Sync at c1, then the small edit at c2; returns both passes. */
async function syncAndDelta(h: Host, registry = h.server.remoteUrl): Promise<{ first: ReconcileResult; second: ReconcileResult; store: string }> {
  const store = join(tempDir('foreign-store-'), 'store');
  const pass = () => reconcile({ site: 'alpha', registry, store, token: TOKEN, networkTimeoutMs: 10_000 });
  await h.publish(c1);
  const first = await pass();
  expect(first.errors).toEqual([]);
  expect(first.changed).toEqual([{ model: 'big', to: '1' }]);
  await h.publish(c2);
  const second = await pass();
  expect(second.errors).toEqual([]);
  expect(second.changed).toEqual([{ model: 'big', from: '1', to: '2' }]);
  expect(readFileSync(join(store, 'models/big/current/w.bin')).equals(v2)).toBe(true);
  return { first, second, store };
}

const basicUser = (h: string | undefined): string => Buffer.from((h ?? '').replace(/^Basic /, ''), 'base64').toString().split(':')[0]!;

describe('a site against hosts we did not write (stock git http-backend, dangling HEAD)', () => {
  it('a host that checks the Basic user name (GitLab deploy token): the URL user goes to Git and LFS; without it, 403', async () => {
    const h = await host({ username: 'gitlab+deploy-token-7' });
    const port = new URL(h.server.remoteUrl).port;
    // What we sent before: `modelsync:<token>`, refused.
    await h.publish(c1);
    const refused = await reconcile({ site: 'alpha', registry: h.server.remoteUrl, store: join(tempDir(), 's'), token: TOKEN });
    expect(refused.errors[0]).toMatchObject({ code: 'AuthError' });
    h.server.requests.length = 0;

    const { second } = await syncAndDelta(h, `http://gitlab%2Bdeploy-token-7@127.0.0.1:${port}/repo.git`);
    expect(second.bytesFetched).toBeLessThan(2 << 20);
    const withAuth = h.server.requests.filter((r) => r.headers.authorization);
    expect(withAuth.some((r) => r.path.includes('/info/refs'))).toBe(true);
    expect(withAuth.some((r) => r.path.endsWith('/objects/batch'))).toBe(true);
    for (const r of withAuth) expect(basicUser(r.headers.authorization)).toBe('gitlab+deploy-token-7');
  });

  it('reconcile --username (and MODELSYNC_USERNAME) sends that user name with the token file', async () => {
    const h = await host({ username: 'gitlab+deploy-token-7' });
    await h.publish(c1);
    const tokenFile = join(tempDir(), 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`);
    const store = join(tempDir(), 'store');
    const args = ['reconcile', '--site', 'alpha', '--registry', h.server.remoteUrl, '--store', store, '--token-file', tokenFile, '--json'];
    const byFlag = await cliAsync([...args, '--username', 'gitlab+deploy-token-7'], { cwd: repo, env });
    expect(byFlag.status, byFlag.stderr).toBe(0);
    expect(JSON.parse(byFlag.stdout)).toMatchObject({ changed: [{ model: 'big', to: '1' }] });
    await h.publish(c2);
    const byEnv = await cliAsync(args, { cwd: repo, env: { ...env, MODELSYNC_USERNAME: 'gitlab+deploy-token-7' } });
    expect(byEnv.status, byEnv.stderr).toBe(0);
    expect(readFileSync(join(store, 'models/big/current/w.bin')).equals(v2)).toBe(true);
    for (const r of h.server.requests.filter((q) => q.headers.authorization)) expect(basicUser(r.headers.authorization)).toBe('gitlab+deploy-token-7');
    // Without a token the user name has nothing to go with: a usage error, not a token made of the user name.
    const alone = await cliAsync(['reconcile', '--site', 'alpha', '--registry', h.server.remoteUrl, '--store', store, '--username', 'x'], { cwd: repo, env });
    expect(alone.status).toBe(2);
    expect(alone.stderr).toMatch(/--username: needs a token to go with it/);
  });

  it('a server whose 206 runs to the end of the object (ranges bytes=a-b answered a-end): the delta still costs under 2 MiB', async () => {
    const h = await host({ ranges: 'to-end' });
    const { first, second } = await syncAndDelta(h);
    // The whole object and its chunk index, which the site keeps so the next upgrade need not re-read the file: about 0.1% more.
    expect(first.bytesFetched).toBeGreaterThan(SIZE);
    expect(first.bytesFetched - SIZE).toBeLessThan(SIZE / 500);
    const ranged = h.server.requests.filter((r) => r.headers.range && /^bytes=\d+-\d+$/.test(String(r.headers.range)));
    expect(ranged.length).toBeGreaterThan(0);
    for (const r of ranged) expect(r.status).toBe(206);
    expect(second.bytesFetched).toBeLessThan(2 << 20);
    // What the sender pushed into its sockets before seeing the close (docs/lfs.md quotes it): more than we read, bounded by buffers.
    expect(h.server.bytesSent - SIZE).toBeLessThan(SIZE);
  });

  it('a server that answers a Range with 200 and the whole object: sync and upgrade succeed (the delta falls back)', async () => {
    const h = await host({ ranges: 'ignore' });
    const { second } = await syncAndDelta(h);
    expect(second.bytesFetched).toBeGreaterThanOrEqual(v2.length);
  });

  it('429 and 503 with Retry-After (seconds, then an HTTP date) on the batch API and on storage: waited out, then retried', async () => {
    const h = await host({ hrefs: 'storage' });
    h.server.batchFaults.push({ status: 429, retryAfter: '1' }, { status: 503, retryAfter: new Date(Date.now() + 1500).toUTCString() });
    const v1oid = lfsObjects.map((f) => f.split('/').pop()!).find((oid) => h.server.objects.get(oid)!.size === SIZE)!;
    h.server.fault(v1oid, { status: 503, retryAfter: '1' });
    const started = Date.now();
    const { first, second } = await syncAndDelta(h);
    expect(Date.now() - started).toBeGreaterThan(1900);
    // Counted for metrics (modelsync_lfs_throttled_total): two batch answers and one storage answer.
    expect(first.throttled).toBe(3);
    expect(second.throttled).toBeUndefined();
    const batches = h.server.requests.filter((r) => r.path.endsWith('/objects/batch'));
    expect(batches.slice(0, 3).map((r) => r.status)).toEqual([429, 503, 200]);
    const storage = h.server.requests.filter((r) => r.server === 'storage' && r.path.includes(v1oid));
    expect(storage[0]!.status).toBe(503);
    expect(storage[1]!.status).toBe(200);
    expect(second.bytesFetched).toBeLessThan(2 << 20);
  });

  it('actions with expires_at that expire mid-pass (during a Retry-After wait) are refreshed with a new batch call', async () => {
    // The first batch's hrefs live 8 s; later ones an hour. The client treats an href within 5 s of its
    // expiry as expired (git-lfs's margin): 8 s is fresh when the first download starts, even on a
    // loaded machine, and after the 4 s Retry-After wait (503) at most 4 s are left, so the client
    // asks for a new href instead of sending the dying one.
    const h = await host({ hrefs: 'storage', expiresAt: true, expiresIn: (_oid, n) => (n === 1 ? 8 : 3600) });
    const v1oid = lfsObjects.map((f) => f.split('/').pop()!).find((oid) => h.server.objects.get(oid)!.size === SIZE)!;
    h.server.fault(v1oid, { status: 503, retryAfter: '4' });
    await syncAndDelta(h);
    const storage = h.server.requests.filter((r) => r.server === 'storage' && r.path.includes(v1oid));
    expect(storage.slice(0, 2).map((r) => r.status)).toEqual([503, 200]);
    expect(storage[1]!.path).not.toBe(storage[0]!.path); // a fresh href
    const asked = h.server.batches.filter((b) => b.oids.includes(v1oid));
    expect(asked.length).toBe(2);
  });

  it('an href that dies before the expires_at it was given is refused (403) and asked for again, not failed', async () => {
    // The server claims an hour; its storage refuses the first href anyway (a clock skew, a rotated key).
    const h = await host({ hrefs: 'storage', expiresAt: true, expiresIn: () => 3600 });
    const v1oid = lfsObjects.map((f) => f.split('/').pop()!).find((oid) => h.server.objects.get(oid)!.size === SIZE)!;
    h.server.fault(v1oid, { status: 403, body: 'Request has expired' });
    await syncAndDelta(h);
    const storage = h.server.requests.filter((r) => r.server === 'storage' && r.path.includes(v1oid)).map((r) => r.status);
    expect(storage.slice(0, 2)).toEqual([403, 200]);
    expect(h.server.batches.filter((b) => b.oids.includes(v1oid)).length).toBe(2);
  });

  it('presigned storage hrefs without a header map (S3): no Authorization header ever reaches storage', async () => {
    const h = await host({ hrefs: 'presigned' });
    const { second } = await syncAndDelta(h);
    const storage = h.server.requests.filter((r) => r.server === 'storage');
    expect(storage.length).toBeGreaterThan(2);
    for (const r of storage) expect(r.headers.authorization).toBeUndefined();
    expect(second.bytesFetched).toBeLessThan(2 << 20);
  });

  for (const status of [301, 302, 307] as const) {
    it(`the LFS server redirects downloads (${status}) to presigned storage: followed, the token stays behind`, async () => {
      const h = await host({ redirectStatus: status });
      const { second } = await syncAndDelta(h);
      const redirected = h.server.requests.filter((r) => r.server === 'lfs' && r.status === status);
      expect(redirected.length).toBeGreaterThan(0);
      for (const r of redirected) expect(basicUser(r.headers.authorization)).toBe('modelsync');
      const storage = h.server.requests.filter((r) => r.server === 'storage');
      expect(storage.length).toBeGreaterThan(0);
      for (const r of storage) expect(r.headers.authorization).toBeUndefined();
      expect(second.bytesFetched).toBeLessThan(2 << 20);
    });
  }

  it('a configured branch that is not there says which branches exist', async () => {
    const h = await host({});
    await h.publish(c1);
    const r = await reconcile({ site: 'alpha', registry: h.server.remoteUrl, branch: 'production', store: join(tempDir(), 's'), token: TOKEN });
    expect(r.errors[0]!.message).toMatch(/branch "production" does not exist in http:\/\/127\.0\.0\.1:\d+\/repo\.git; it has branch "main"/);
  });
});
