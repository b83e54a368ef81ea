/**
 * The S3 object store over time and as an operator runs it: presigned URLs
 * expire (and an agent holding a dead one asks again), a restarted hub serves
 * what is in the bucket, `modelsync serve --objects s3://…` takes its
 * credentials from the environment as the AWS SDK does, and nothing but the
 * S3 store ever loads the SDK.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { reconcile } from '../../src/reconcile/index.ts';
import { CLI, ROOT, cliAsync, gitAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { sha256, startTestHub, type TestHub } from '../helpers/hub.ts';
import { S3_CREDENTIALS, startTestS3, type TestS3 } from '../helpers/s3.ts';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const LFS = 'application/vnd.git-lfs+json';

async function downloadAction(th: TestHub, repo: string, secret: string, oid: string, size: number): Promise<{ href: string; header?: Record<string, string>; expires_in: number }> {
  const r = await fetch(`${th.url}/${repo}.git/info/lfs/objects/batch`, {
    method: 'POST',
    headers: { ...th.auth(secret), 'Content-Type': LFS },
    body: JSON.stringify({ operation: 'download', objects: [{ oid, size }] }),
  });
  expect(r.status).toBe(200);
  const o = ((await r.json()) as { objects: Array<{ actions: { download: { href: string; header?: Record<string, string>; expires_in: number } } }> }).objects[0]!;
  return o.actions.download;
}

let s3: TestS3;
let env: NodeJS.ProcessEnv;
let data: string;
let tokensFile: string;
let secrets: TestHub['secrets'];
let weights: Buffer;
const s3Flags = (extra: { now?: () => Date } = {}) => ({ endpoint: s3.endpoint, credentials: S3_CREDENTIALS, ...extra });

beforeAll(async () => {
  env = { ...isolatedGitEnv(), MODELSYNC_NO_AUTOPUSH: '1' };
  s3 = await startTestS3();
  // A first hub takes a publish (a registry whose site alpha runs big 1), then stops.
  const th = await startTestHub({ tokens: true, sites: ['alpha'], objects: 's3://models/r', s3: s3Flags() });
  data = th.data;
  tokensFile = th.tokensFile!;
  secrets = th.secrets;
  const root = tempDir();
  const repo = join(root, 'registry');
  expect((await cliAsync(['init', repo, '--bare-example'], { cwd: root, env })).status).toBe(0);
  await gitAsync(['remote', 'add', 'origin', th.repoUrl('models')], { cwd: repo, env });
  weights = randomBytes(2 << 20);
  writeFileSync(join(root, 'w.bin'), weights);
  const r = await cliAsync(['publish', 'big', '1', join(root, 'w.bin'), '--push'], { cwd: repo, env: { ...env, MODELSYNC_TOKEN: th.secrets.publisher } });
  expect(r.status, r.stderr).toBe(0);
  writeFileSync(join(repo, 'sites/alpha.yaml'), 'models: [big]\n');
  await gitAsync(['add', 'sites/alpha.yaml'], { cwd: repo, env });
  await gitAsync(['commit', '-q', '-m', 'alpha runs big'], { cwd: repo, env });
  await gitAsync(['push', '-q', th.repoUrl('models', th.secrets.publisher), 'main'], { cwd: repo, env });
  await th.close();
}, 180_000);

describe('objects on S3 across restarts and time', { timeout: 120_000 }, () => {
  test('a restarted hub serves the objects from the bucket and counts them; a presigned URL past its TTL is refused (403) and a new batch call gives a working one', async () => {
    const th = await startTestHub({ tokens: true, tokensFile, data, objects: 's3://models/r', s3: s3Flags(), limits: { actionTtlSeconds: 3 } });
    try {
      const inBucket = (await s3.listKeys('r/')).length;
      expect(inBucket).toBeGreaterThanOrEqual(1);
      await expect.poll(() => th.hub.metrics.value('modelsync_hub_lfs_objects'), { timeout: 10_000 }).toBe(inBucket);
      const oid = sha(weights);
      const a = await downloadAction(th, 'models', secrets.site, oid, weights.length);
      expect(a.expires_in).toBe(3);
      const signed = new URL(a.href).searchParams;
      expect(signed.get('X-Amz-Expires')).toBe('3');
      // X-Amz-Date has whole seconds, so a URL is good for 2 to 3 s from when it was signed: the
      // fresh fetch has that long (a 1 s TTL left it 0 to 1 s, which a loaded CI machine missed).
      // The wait below runs to the instant the store stops honouring it, not a fixed sleep, so
      // load cannot make the late fetch early.
      const date = signed.get('X-Amz-Date')!.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z');
      const expiresAt = Date.parse(date) + 3000;
      expect(Number.isNaN(expiresAt)).toBe(false);
      const fresh = await fetch(a.href);
      expect(fresh.status).toBe(200);
      expect(sha(Buffer.from(await fresh.arrayBuffer()))).toBe(oid);
      await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now()) + 1100));
      const late = await fetch(a.href);
      expect(late.status).toBe(403);
      expect(await late.text()).toContain('Request has expired');
      const again = await fetch((await downloadAction(th, 'models', secrets.site, oid, weights.length)).href);
      expect(again.status).toBe(200);
      expect(sha(Buffer.from(await again.arrayBuffer()))).toBe(oid);
    } finally {
      await th.close();
    }
  });

  test('an agent handed an already expired URL gets the 403 from the store, asks the hub again and converges', async () => {
    // The hub's first signature is dated two hours back (as a hub with a wrong clock, or a URL
    // that sat in a long queue): the store refuses it; every later one is current.
    let signed = 0;
    const now = (): Date => (signed++ === 0 ? new Date(Date.now() - 2 * 3600_000) : new Date());
    const th = await startTestHub({ tokens: true, tokensFile, data, objects: 's3://models/r', s3: s3Flags({ now }) });
    try {
      const start = s3.requests.length;
      const store = join(tempDir(), 'store');
      const pass = await reconcile({ site: 'alpha', registry: th.repoUrl('models', secrets.bySite.alpha), store, networkTimeoutMs: 10_000 });
      expect(pass.errors).toEqual([]);
      expect(pass.changed).toEqual([{ model: 'big', to: '1' }]);
      expect(readFileSync(join(store, 'models/big/current/w.bin')).equals(weights)).toBe(true);
      const gets = s3.requests.slice(start).filter((q) => q.method === 'GET' && q.query.has('X-Amz-Signature') && q.path.endsWith(sha(weights)));
      expect(gets.map((q) => q.status)).toEqual([403, 200]);
      expect(th.hub.metrics.value('modelsync_hub_http_requests_total', { route: 'lfs-batch', method: 'POST', code: '200' })).toBe(2);
    } finally {
      await th.close();
    }
  });
});

describe('modelsync serve --objects s3://…', { timeout: 120_000 }, () => {
  test('takes credentials from the environment, logs where objects live, stores and hands out presigned URLs; a missing bucket stops it with the reason', async () => {
    const dir = tempDir();
    const secret = randomBytes(16).toString('hex');
    const tokens = join(dir, 'tokens.yaml');
    writeFileSync(tokens, `tokens:\n  - {name: ci, sha256: ${sha256(secret)}, role: publisher}\n`);
    const awsEnv = { ...process.env, AWS_ACCESS_KEY_ID: S3_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3_CREDENTIALS.secretAccessKey, AWS_REGION: '', AWS_PROFILE: '', AWS_CONFIG_FILE: join(dir, 'none'), AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none'), MODELSYNC_LOG_LEVEL: 'info' };
    const child = spawn(process.execPath, [CLI, 'serve', '--data', join(dir, 'data'), '--listen', '127.0.0.1:0', '--tokens', tokens, '--objects', 's3://models/cli', '--s3-endpoint', s3.endpoint], { env: awsEnv });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 30_000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /listening on (http:\/\/\S+)/.exec(out);
          if (m) {
            clearTimeout(t);
            resolve(m[1]!);
          }
        });
        child.on('exit', () => reject(new Error(`serve exited early: ${err}`)));
      });
      expect(err).toContain(`s3://models/cli/ at ${s3.endpoint} (path-style)`);
      const body = randomBytes(100_000);
      const oid = sha(body);
      const auth = { Authorization: `Bearer ${secret}` };
      const b = await fetch(`${url}/reg.git/info/lfs/objects/batch`, { method: 'POST', headers: { ...auth, 'Content-Type': LFS }, body: JSON.stringify({ operation: 'upload', objects: [{ oid, size: body.length }] }) });
      const up = ((await b.json()) as { objects: Array<{ actions: { upload: { href: string; header: Record<string, string> } } }> }).objects[0]!.actions.upload;
      expect((await fetch(up.href, { method: 'PUT', headers: up.header, body })).status).toBe(200);
      expect(await s3.listKeys('cli/')).toEqual([`cli/reg.git/lfs/objects/${oid.slice(0, 2)}/${oid.slice(2, 4)}/${oid}`]);
      const d = await fetch(`${url}/reg.git/info/lfs/objects/batch`, { method: 'POST', headers: { ...auth, 'Content-Type': LFS }, body: JSON.stringify({ operation: 'download', objects: [{ oid, size: body.length }] }) });
      const href = ((await d.json()) as { objects: Array<{ actions: { download: { href: string } } }> }).objects[0]!.actions.download.href;
      expect(href.startsWith(`${s3.endpoint}/models/cli/reg.git/`)).toBe(true);
      expect(sha(Buffer.from(await (await fetch(href)).arrayBuffer()))).toBe(oid);
      // The hub's own href still works, by redirecting to the store.
      const own = await fetch(`${url}/reg.git/info/lfs/objects/${oid}`, { headers: auth, redirect: 'manual' });
      expect(own.status).toBe(302);
      expect(own.headers.get('location')!.startsWith(`${s3.endpoint}/models/cli/`)).toBe(true);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    expect(err).not.toContain(secret);

    const missing = await cliAsync(['serve', '--data', join(dir, 'data2'), '--listen', '127.0.0.1:0', '--objects', 's3://no-such-bucket', '--s3-endpoint', s3.endpoint], { cwd: dir, env: awsEnv });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('bucket s3://no-such-bucket');
    expect(missing.stderr).toContain('does not exist');
    const stray = await cliAsync(['serve', '--data', join(dir, 'data3'), '--s3-endpoint', s3.endpoint], { cwd: dir, env: awsEnv });
    expect(stray.status).toBe(2);
    expect(stray.stderr).toContain('--s3-endpoint and --s3-path-style go with --objects s3://');
  }, 180_000);

  test('only the S3 store imports the AWS SDK, and only open.ts imports it, dynamically (agents and filesystem hubs never load it)', () => {
    const files: string[] = [];
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
        // Tests may import what they test; the question is what the product loads.
        else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) files.push(join(d, e.name));
      }
    };
    walk(join(ROOT, 'src'));
    const sdkUsers = files.filter((f) => /from '@aws-sdk\//.test(readFileSync(f, 'utf8'))).map((f) => relative(ROOT, f)).sort();
    expect(sdkUsers).toEqual(['src/hub/storage/s3-client.ts', 'src/hub/storage/s3-upload.ts', 'src/hub/storage/s3.ts']);
    const s3Modules = /['"]\.\.?\/(?:[\w./-]*\/)?(?:storage\/)?s3(?:-client|-upload)?\.ts['"]/;
    for (const f of files) {
      const rel = relative(ROOT, f);
      if (sdkUsers.includes(rel)) continue;
      for (const line of readFileSync(f, 'utf8').split('\n')) {
        if (!s3Modules.test(line)) continue;
        // A type-only import is erased; anything else must be the one dynamic import in open.ts.
        if (/^\s*import type /.test(line) || /^\s*export type /.test(line)) continue;
        expect({ rel, line: line.trim() }).toEqual({ rel: 'src/hub/storage/open.ts', line: "const { S3Objects } = await import('./s3.ts');" });
      }
    }
  });
});
