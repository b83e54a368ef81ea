/**
 * The hub with its LFS objects in S3-compatible storage (`--objects s3://…`),
 * against a real S3-compatible server over HTTP (s3rver, test/helpers/s3.ts)
 * with a counting proxy in front: publishers push with stock git + git-lfs and
 * with `modelsync publish --push`; sites clone and reconcile, fetching from the
 * store directly through presigned URLs while the hub sends no object bytes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { reconcile } from '../../src/reconcile/index.ts';
import { cliAsync, gitAsync, isolatedGitEnv, tempDir, writeTree } from '../helpers/env.ts';
import { startTestHub, type TestHub } from '../helpers/hub.ts';
import { S3_CREDENTIALS, startTestS3, type TestS3 } from '../helpers/s3.ts';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const LFS = 'application/vnd.git-lfs+json';
const PART = 5 << 20;

/** Bytes the hub sent, by route, from its own metrics. */
function sentByRoute(th: TestHub): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of th.hub.metrics.render().matchAll(/^modelsync_hub_http_sent_bytes_total\{route="([^"]+)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}
const total = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);

interface BatchObject {
  oid: string;
  size: number;
  actions?: Record<string, { href: string; header?: Record<string, string>; expires_in?: number }>;
  error?: { code: number; message: string };
}

async function batch(th: TestHub, repo: string, secret: string, operation: 'upload' | 'download', objects: Array<{ oid: string; size: number }>): Promise<BatchObject[]> {
  const r = await fetch(`${th.url}/${repo}.git/info/lfs/objects/batch`, {
    method: 'POST',
    headers: { ...th.auth(secret), 'Content-Type': LFS, Accept: LFS },
    body: JSON.stringify({ operation, objects }),
  });
  expect(r.status).toBe(200);
  return ((await r.json()) as { objects: BatchObject[] }).objects;
}

/** PUT `body` to an upload action; resolves with the status and the LFS error body. */
async function put(href: string, header: Record<string, string> | undefined, body: Buffer): Promise<{ status: number; body: string }> {
  const r = await fetch(href, { method: 'PUT', headers: { ...header, 'Content-Type': 'application/octet-stream' }, body });
  return { status: r.status, body: await r.text() };
}

let s3: TestS3;
let th: TestHub;
let env: NodeJS.ProcessEnv;
const s3Options = (): { endpoint: string; credentials: typeof S3_CREDENTIALS; partBytes: number } => ({ endpoint: s3.endpoint, credentials: S3_CREDENTIALS, partBytes: PART });
const keyOf = (repo: string, oid: string): string => `hub/${repo}.git/lfs/objects/${oid.slice(0, 2)}/${oid.slice(2, 4)}/${oid}`;

beforeAll(async () => {
  env = { ...isolatedGitEnv(), MODELSYNC_NO_AUTOPUSH: '1' };
  s3 = await startTestS3();
  th = await startTestHub({ tokens: true, sites: ['alpha'], objects: 's3://models/hub', s3: s3Options() });
});
afterAll(async () => {
  await th?.close();
});

describe('objects on S3: publish and fetch without object bytes through the hub', { timeout: 120_000 }, () => {
  test('stock git push + git-lfs lands the objects in the bucket; a stock clone fetches them from the store with presigned URLs, never with the hub token', async () => {
    const work = join(tempDir(), 'publisher');
    const model = randomBytes(3 << 20);
    const labels = randomBytes(40_000);
    const g = (args: string[], cwd = work) => gitAsync(args, { cwd, env });
    await g(['init', '-q', work], '/');
    await g(['lfs', 'track', '*.bin']);
    writeTree(work, { 'face/model.bin': model, 'face/labels.bin': labels });
    await g(['add', '.']);
    await g(['commit', '-qm', 'face']);
    await g(['push', '-q', th.repoUrl('stock', th.secrets.publisher), 'main']);

    const keys = await s3.listKeys('hub/stock.git/');
    expect(keys.sort()).toEqual([keyOf('stock', sha(model)), keyOf('stock', sha(labels))].sort());
    // Nothing of the objects on the hub's disk: the bare repo holds Git data only.
    expect(existsSync(join(th.data, 'repos', 'stock.git', 'lfs', 'objects'))).toBe(false);

    const before = sentByRoute(th);
    const requestsBefore = s3.requests.length;
    const clone = join(tempDir(), 'site');
    await g(['clone', '-q', th.repoUrl('stock', th.secrets.site), clone], '/');
    expect(sha(readFileSync(join(clone, 'face/model.bin')))).toBe(sha(model));
    expect(sha(readFileSync(join(clone, 'face/labels.bin')))).toBe(sha(labels));
    const after = sentByRoute(th);
    // The hub answered the batch call and Git; no object bytes (the two objects are 3 MiB; all it sent is far less).
    expect(after['lfs-download'] ?? 0).toBe(0);
    expect(total(after) - total(before)).toBeLessThan(200_000);
    const gets = s3.requests.slice(requestsBefore).filter((r) => r.method === 'GET' && r.query.has('X-Amz-Signature'));
    expect(gets.map((r) => r.path).sort()).toEqual([`/models/${keyOf('stock', sha(model))}`, `/models/${keyOf('stock', sha(labels))}`].sort());
    expect(gets.reduce((n, r) => n + r.bytesSent, 0)).toBe(model.length + labels.length);
    for (const r of s3.requests) {
      // Presigned GETs carry no Authorization at all; and no request to the store carries a hub secret anywhere.
      if (r.query.has('X-Amz-Signature')) expect(r.headers.authorization).toBeUndefined();
      const all = JSON.stringify(r.headers) + r.query.toString();
      for (const secret of [th.secrets.publisher, th.secrets.site, th.secrets.admin]) expect(all).not.toContain(secret);
    }
  });

  test('modelsync publish --push uploads through the hub (multipart past 5 MiB) and a reconcile fetches from the store: zero object bytes from the hub', async () => {
    const root = tempDir();
    const repo = join(root, 'registry');
    expect((await cliAsync(['init', repo, '--bare-example'], { cwd: root, env })).status).toBe(0);
    await gitAsync(['remote', 'add', 'origin', th.repoUrl('models')], { cwd: repo, env });
    const weights = randomBytes(12 << 20);
    writeFileSync(join(root, 'w.bin'), weights);
    const pushStart = s3.requests.length;
    const r = await cliAsync(['publish', 'big', '1', join(root, 'w.bin'), '--push', '--json'], { cwd: repo, env: { ...env, MODELSYNC_TOKEN: th.secrets.publisher } });
    expect(r.status, r.stderr).toBe(0);
    // The example registry's own object and the new weights.
    const uploaded = (JSON.parse(r.stdout) as { pushed: { uploaded: number } }).pushed.uploaded;
    expect(uploaded).toBeGreaterThanOrEqual(1);
    writeFileSync(join(repo, 'sites/alpha.yaml'), 'models: [big]\n');
    await gitAsync(['add', 'sites/alpha.yaml'], { cwd: repo, env });
    await gitAsync(['commit', '-q', '-m', 'alpha runs big'], { cwd: repo, env });
    await gitAsync(['push', '-q', th.repoUrl('models', th.secrets.publisher), 'main'], { cwd: repo, env });
    const key = keyOf('models', sha(weights));
    const keys = await s3.listKeys('hub/models.git/');
    expect(keys).toContain(key);
    expect(keys.length).toBe(uploaded);
    // 12 MiB in 5 MiB parts: three UploadParts, one Complete, after the hash matched.
    const pushReqs = s3.requests.slice(pushStart).filter((q) => q.path === `/models/${key}`);
    expect(pushReqs.filter((q) => q.method === 'PUT' && q.query.has('partNumber')).length).toBe(3);
    expect(pushReqs.filter((q) => q.method === 'POST' && q.query.has('uploadId')).length).toBe(1);

    const before = sentByRoute(th);
    const store = join(tempDir(), 'store');
    const pass = await reconcile({ site: 'alpha', registry: th.repoUrl('models', th.secrets.site), store, networkTimeoutMs: 10_000 });
    expect(pass.errors).toEqual([]);
    expect(pass.changed).toEqual([{ model: 'big', to: '1' }]);
    expect(sha(readFileSync(join(store, 'models/big/current/w.bin')))).toBe(sha(weights));
    const after = sentByRoute(th);
    expect(after['lfs-download'] ?? 0).toBe(0);
    // Git (a few KiB of packs) and one batch answer; the 12 MiB came from the store.
    expect(total(after) - total(before)).toBeLessThan(500_000);
    const fetched = s3.requests.filter((q) => q.method === 'GET' && q.path === `/models/${key}` && q.query.has('X-Amz-Signature'));
    expect(fetched.reduce((n, q) => n + q.bytesSent, 0)).toBe(weights.length);

    // A small edit: the upgrade fetches changed chunks of the new object with Range from the store.
    const v2 = Buffer.concat([weights.subarray(0, 6 << 20), randomBytes(1024), weights.subarray(6 << 20)]);
    writeFileSync(join(root, 'w.bin'), v2);
    const r2 = await cliAsync(['publish', 'big', '2', join(root, 'w.bin'), '--push'], { cwd: repo, env: { ...env, MODELSYNC_TOKEN: th.secrets.publisher } });
    expect(r2.status, r2.stderr).toBe(0);
    const upgradeStart = s3.requests.length;
    const up2 = await reconcile({ site: 'alpha', registry: th.repoUrl('models', th.secrets.site), store, networkTimeoutMs: 10_000 });
    expect(up2.errors).toEqual([]);
    expect(up2.changed).toEqual([{ model: 'big', from: '1', to: '2' }]);
    expect(sha(readFileSync(join(store, 'models/big/current/w.bin')))).toBe(sha(v2));
    expect(up2.bytesFetched).toBeLessThan(2 << 20);
    const ranged = s3.requests.slice(upgradeStart).filter((q) => q.method === 'GET' && q.headers.range !== undefined);
    expect(ranged.length).toBeGreaterThan(0);
    for (const q of ranged) expect(q.status).toBe(206);
    expect(sentByRoute(th)['lfs-download'] ?? 0).toBe(0);
  });

  test('a 40 MiB object goes up in 5 MiB parts and round-trips; a Range on its presigned URL gets just those bytes', async () => {
    const big = randomBytes(40 << 20);
    const oid = sha(big);
    const start = s3.requests.length;
    const [up] = await batch(th, 'large', th.secrets.publisher, 'upload', [{ oid, size: big.length }]);
    expect((await put(up!.actions!.upload!.href, up!.actions!.upload!.header, big)).status).toBe(200);
    const reqs = s3.requests.slice(start).filter((q) => q.path === `/models/${keyOf('large', oid)}`);
    expect(reqs.filter((q) => q.method === 'POST' && q.query.has('uploads')).length).toBe(1);
    expect(reqs.filter((q) => q.method === 'PUT' && q.query.has('partNumber')).length).toBe(8);
    expect(reqs.filter((q) => q.method === 'POST' && q.query.has('uploadId')).length).toBe(1);

    const [down] = await batch(th, 'large', th.secrets.site, 'download', [{ oid, size: big.length }]);
    const action = down!.actions!.download!;
    expect(action.header).toBeUndefined();
    expect(action.expires_in).toBe(3600);
    expect(new URL(action.href).origin).toBe(s3.endpoint);
    const whole = Buffer.from(await (await fetch(action.href)).arrayBuffer());
    expect(sha(whole)).toBe(oid);
    const ranged = await fetch(action.href, { headers: { Range: `bytes=${(20 << 20) - 10}-${(20 << 20) + 9}` } });
    expect(ranged.status).toBe(206);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(big.subarray((20 << 20) - 10, (20 << 20) + 10))).toBe(true);

    // Uploading it again sends nothing to the store: the batch says it is there.
    const [again] = await batch(th, 'large', th.secrets.publisher, 'upload', [{ oid, size: big.length }]);
    expect(again!.actions).toBeUndefined();
  }, 180_000);
});

describe('objects on S3: nothing unverified under a final key', { timeout: 120_000 }, () => {
  test('wrong bytes for an oid (one part, and multipart) are refused with the LFS error and never reach their key; the multipart upload is aborted', async () => {
    for (const size of [1 << 20, 12 << 20]) {
      const good = randomBytes(size);
      const bad = Buffer.from(good);
      bad.writeUInt8(bad.readUInt8(bad.length - 1) ^ 0xff, bad.length - 1);
      const oid = sha(good);
      const key = keyOf('corrupt', oid);
      const start = s3.requests.length;
      const [up] = await batch(th, 'corrupt', th.secrets.publisher, 'upload', [{ oid, size }]);
      const res = await put(up!.actions!.upload!.href, up!.actions!.upload!.header, bad);
      expect(res.status).toBe(422);
      expect(JSON.parse(res.body)).toMatchObject({ code: 'ChecksumMismatch' });
      expect(await s3.listKeys('hub/corrupt.git/')).toEqual([]);
      expect((await fetch(`${s3.direct}/models/${key}`, { method: 'HEAD' })).status).toBe(404);
      const reqs = s3.requests.slice(start).filter((q) => q.path === `/models/${key}`);
      // Never a PutObject or a CompleteMultipartUpload for it.
      expect(reqs.filter((q) => q.method === 'PUT' && !q.query.has('partNumber'))).toEqual([]);
      expect(reqs.filter((q) => q.method === 'POST' && q.query.has('uploadId'))).toEqual([]);
      if (size > PART) {
        // Parts went up while the body streamed (none of them is an object) and the upload was aborted
        // (s3rver answers AbortMultipartUpload with 405; AWS, MinIO, R2 and RGW delete the parts).
        expect(reqs.filter((q) => q.method === 'PUT' && q.query.has('partNumber')).length).toBeGreaterThan(0);
        expect(reqs.filter((q) => q.method === 'DELETE' && q.query.has('uploadId')).length).toBe(1);
      } else {
        expect(reqs.filter((q) => q.method !== 'HEAD')).toEqual([]);
      }
      // The right bytes after the refusal are stored.
      expect((await put(up!.actions!.upload!.href, up!.actions!.upload!.header, good)).status).toBe(200);
      expect(await s3.listKeys('hub/corrupt.git/')).toEqual([key]);
      await fetch(`${s3.direct}/models/${key}`, { method: 'DELETE' });
    }
  }, 180_000);

  test('an upload cut off mid-body leaves nothing under its key', async () => {
    const size = 12 << 20;
    const body = randomBytes(size);
    const oid = sha(body);
    const [up] = await batch(th, 'cut', th.secrets.publisher, 'upload', [{ oid, size }]);
    const a = up!.actions!.upload!;
    const start = s3.requests.length;
    await new Promise<void>((resolve) => {
      const req = request(a.href, { method: 'PUT', headers: { ...a.header, 'Content-Length': size } });
      req.on('error', () => resolve());
      req.write(body.subarray(0, 8 << 20), () => setTimeout(() => {
        req.destroy();
        resolve();
      }, 300));
    });
    // The hub notices the closed connection, aborts, and counts the rejection.
    await expect.poll(() => th.hub.metrics.value('modelsync_hub_lfs_uploads_rejected_total', { reason: 'UploadAborted' }), { timeout: 10_000 }).toBeGreaterThan(0);
    await expect.poll(() => s3.requests.slice(start).filter((q) => q.method === 'DELETE' && q.query.has('uploadId')).length, { timeout: 10_000 }).toBe(1);
    expect(await s3.listKeys('hub/cut.git/')).toEqual([]);
  });
});
