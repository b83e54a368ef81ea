/**
 * A real S3-compatible server for tests: s3rver (npm) listening on 127.0.0.1
 * over real HTTP with its files in a temp dir, and in front of it a counting
 * proxy that records every request (method, path, query, status, headers,
 * bytes sent back), so a test can see what the hub and the agents asked of the
 * store and with which credentials. Both are closed after the test file.
 *
 * s3rver 3.7 as tested here: path-style buckets; PutObject, HeadObject,
 * GetObject with Range, CreateMultipartUpload/UploadPart/Complete; SigV4
 * presigned URLs are checked for expiry (X-Amz-Date + X-Amz-Expires) but not
 * their signature; AbortMultipartUpload answers 405 and
 * ListMultipartUploads 501; ListObjectsV2 pagination fails (500), v1 with
 * Marker works.
 */
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { afterAll } from 'vitest';
import { tempDir } from './env.ts';

const require = createRequire(import.meta.url);

export const S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface S3Request {
  method: string;
  /** Path without the query, e.g. /models/hub/registry.git/lfs/objects/… */
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  status: number;
  /** Body bytes the store sent back. */
  bytesSent: number;
}

export interface TestS3 {
  /** The proxy's URL: give it to the hub as --s3-endpoint. */
  endpoint: string;
  /** s3rver itself, bypassing the proxy. */
  direct: string;
  bucket: string;
  requests: S3Request[];
  /** Keys in the bucket right now (through s3rver's ListObjects v1). */
  listKeys(prefix?: string): Promise<string[]>;
  close(): Promise<void>;
}

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}

const open: TestS3[] = [];
afterAll(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

export async function startTestS3(bucket = 'models'): Promise<TestS3> {
  const S3rver = require('s3rver') as new (o: Record<string, unknown>) => S3rverInstance;
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory: tempDir('modelsync-s3rver-'), silent: true, configureBuckets: [{ name: bucket }] });
  const addr = await server.run();
  const direct = `http://127.0.0.1:${addr.port}`;
  const requests: S3Request[] = [];
  const proxy: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const entry: S3Request = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, headers: req.headers, status: 0, bytesSent: 0 };
    requests.push(entry);
    const up = request(`${direct}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
      entry.status = r.statusCode ?? 0;
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.on('data', (c: Buffer) => (entry.bytesSent += c.length));
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  let closed = false;
  const s3: TestS3 = {
    endpoint,
    direct,
    bucket,
    requests,
    listKeys: async (prefix = '') => {
      const keys: string[] = [];
      let marker = '';
      for (;;) {
        const res = await fetch(`${direct}/${bucket}?prefix=${encodeURIComponent(prefix)}${marker ? `&marker=${encodeURIComponent(marker)}` : ''}`);
        const xml = await res.text();
        if (res.status !== 200) throw new Error(`ListObjects answered ${res.status}: ${xml}`);
        const page = [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]!);
        keys.push(...page);
        if (!/<IsTruncated>true<\/IsTruncated>/.test(xml) || page.length === 0) return keys;
        marker = page[page.length - 1]!;
      }
    },
    close: async () => {
      if (closed) return;
      closed = true;
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
      await server.close();
    },
  };
  open.push(s3);
  return s3;
}
