/**
 * Uploads (`publish --push`) against the test LFS server: skip what the
 * server has, streamed PUT with Content-Length, verify, presigned hrefs on
 * another host, retries, and refusal of a file that does not match.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthError, ChecksumError, NetworkError, NotFoundError } from '../../src/errors.ts';
import { createFetcher, discoverEndpoint, uploadObjects, type HttpFetcher } from '../../src/lfs/index.ts';
import { tempDir } from '../helpers/env.ts';
import { blob, FAST_RETRY, oidOf, runFetch } from './helpers.ts';
import { LfsTestServer, type LfsTestServerOptions } from './server.ts';

let servers: LfsTestServer[] = [];
afterEach(async () => void (await Promise.all(servers.splice(0).map((s) => s.close()))));
async function server(opts: LfsTestServerOptions = {}): Promise<LfsTestServer> {
  const s = await LfsTestServer.start(opts);
  servers.push(s);
  return s;
}

function files(...contents: Buffer[]): Array<{ oid: string; size: number; path: string }> {
  const dir = tempDir('lfs-upload-');
  return contents.map((c, i) => {
    const path = join(dir, `f${i}.bin`);
    writeFileSync(path, c);
    return { oid: oidOf(c), size: c.length, path };
  });
}

describe('uploadObjects', () => {
  it('uploads what the server lacks, skips what it has, verifies, and the result downloads back', async () => {
    const s = await server({ token: 'pub-token' });
    const [a, b, c] = [blob(300_000), blob(1000), blob(5000)];
    s.add(b);
    const objects = files(a, b, c);
    const result = await uploadObjects({ endpoint: discoverEndpoint({ remote: s.remoteUrl, token: 'pub-token', operation: 'upload' }), objects, retry: FAST_RETRY });
    expect(result.uploaded.map((o) => o.oid).sort()).toEqual([oidOf(a), oidOf(c)].sort());
    expect(result.skipped).toEqual([{ oid: oidOf(b), size: b.length }]);
    expect(result.bytesTransferred).toBe(a.length + c.length);
    expect(s.batches[0]!.operation).toBe('upload');
    const puts = s.requests.filter((r) => r.method === 'PUT');
    expect(puts).toHaveLength(2);
    for (const p of puts) {
      expect(p.headers['content-length']).toBeDefined();
      expect(p.headers['transfer-encoding']).toBeUndefined();
      expect(p.headers.authorization).toMatch(/^Basic /);
    }
    expect(s.requests.filter((r) => r.path.endsWith('/verify'))).toHaveLength(2);

    const f = createFetcher({ remote: s.remoteUrl, token: 'pub-token' }) as HttpFetcher;
    const run = await runFetch(f, objects);
    f.close();
    expect(run.verified.get(oidOf(a))).toBe(oidOf(a));
  });

  it('PUTs to presigned storage on another host with its headers and without our Authorization', async () => {
    const s = await server({ token: 'pub-token', hrefs: 'storage' });
    const objects = files(blob(10_000));
    await uploadObjects({ endpoint: s.lfsUrl, auth: { token: 'pub-token' }, objects, retry: FAST_RETRY });
    const put = s.requests.find((r) => r.method === 'PUT')!;
    expect(put.server).toBe('storage');
    expect(put.headers.authorization).toBeUndefined();
    expect(put.headers[s.storageHeader.name]).toBe(s.storageHeader.value);
    expect(s.objects.has(objects[0]!.oid)).toBe(true);
  });

  it('retries a failed batch and keeps going', async () => {
    const s = await server();
    s.batchFaults.push({ status: 503 }, { status: 500 });
    const objects = files(blob(2000));
    const result = await uploadObjects({ endpoint: s.lfsUrl, objects, retry: FAST_RETRY });
    expect(result.uploaded).toHaveLength(1);
    expect(s.batches).toHaveLength(3);
  });

  it('refuses a file whose size does not match before any request', async () => {
    const s = await server();
    const [obj] = files(blob(100));
    await expect(uploadObjects({ endpoint: s.lfsUrl, objects: [{ ...obj!, size: 99 }] })).rejects.toBeInstanceOf(ChecksumError);
    await expect(uploadObjects({ endpoint: s.lfsUrl, objects: [{ ...obj!, path: '/nonexistent/file' }] })).rejects.toBeInstanceOf(NotFoundError);
    expect(s.requests).toHaveLength(0);
  });

  it('fails with the server’s refusal when the content does not hash to the oid, naming how many failed', async () => {
    const s = await server();
    const [good] = files(blob(100));
    const [liar] = files(blob(200));
    const wrong = { ...liar!, oid: 'aa'.repeat(32) };
    const err = await uploadObjects({ endpoint: s.lfsUrl, objects: [good!, wrong], retry: FAST_RETRY }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkError);
    expect((err as NetworkError).message).toMatch(/1 of 2 LFS uploads .* failed.*422/);
    expect((err as NetworkError).data.failed).toEqual([expect.objectContaining({ oid: wrong.oid })]);
    expect(s.objects.has(good!.oid)).toBe(true);
  });

  it('counts failures among the uploads attempted, not the objects the server already had', async () => {
    const s = await server();
    const [had1, had2, had3, good, bad] = [blob(100), blob(101), blob(102), blob(103), blob(104)];
    s.add(had1);
    s.add(had2);
    s.add(had3);
    const objects = files(had1, had2, had3, good, bad);
    s.objectErrors.set(objects[4]!.oid, { code: 422, message: 'rejected by policy' });
    const err = (await uploadObjects({ endpoint: s.lfsUrl, objects, retry: FAST_RETRY }).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/^1 of 2 LFS uploads to .* failed; 3 already on the server; first: .*rejected by policy/);
  });

  it('reports a refused batch request once, as the credentials problem it is', async () => {
    const s = await server({ token: 'right-token' });
    const objects = files(...Array.from({ length: 7 }, (_, i) => blob(100 + i)));
    const err = (await uploadObjects({ endpoint: s.lfsUrl, auth: { token: 'wrong' }, objects, retry: FAST_RETRY }).catch((e: unknown) => e)) as AuthError;
    expect(err).toBeInstanceOf(AuthError);
    expect(err.message).toMatch(/^LFS batch upload refused: .* needs credentials \(401\)/);
    expect(err.message).not.toMatch(/of 7|uploads .* failed/);
    expect(err.data.failed).toHaveLength(7);
    // One refusal is enough: the objects still waiting are not sent to ask again.
    expect(s.batches).toHaveLength(1);
  });

  it('a batch that fails after others succeeded says how many objects were left behind', async () => {
    const s = await server();
    const objects = files(...Array.from({ length: 101 }, (_, i) => blob(50 + i)));
    // The first batch (100 objects) works; once uploads are under way, every try of the second fails.
    let armed = false;
    const onProgress = (): void => {
      if (!armed) s.batchFaults.push(...Array.from({ length: FAST_RETRY.retries + 1 }, () => ({ status: 503 })));
      armed = true;
    };
    const err = (await uploadObjects({ endpoint: s.lfsUrl, objects, retry: FAST_RETRY, onProgress }).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/^LFS batch upload.*503.* \(1 of 101 LFS objects not uploaded\)$/);
    expect(s.objects.size).toBe(100);
  });

  it('keeps the token out of upload errors', async () => {
    const s = await server({ token: 'right-token' });
    const objects = files(blob(100));
    const err = (await uploadObjects({ endpoint: s.lfsUrl.replace('http://', 'http://ci:upload-sekrit-77@'), objects }).catch((e: unknown) => e)) as Error;
    expect(err.name).toBe('AuthError');
    expect(`${err.message} ${err.stack} ${JSON.stringify(err)}`).not.toContain('upload-sekrit-77');
  });
});
