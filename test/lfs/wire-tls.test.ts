/**
 * The bare GET (src/lfs/wire.ts) over https: a large body from a real TLS
 * server on 127.0.0.1 arrives byte for byte when its CA is trusted (a child
 * process with NODE_EXTRA_CA_CERTS, as an operator with a private CA runs
 * it), and an untrusted certificate is a NetworkError, never a body.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wireGet } from '../../src/lfs/wire.ts';
import { tempDir } from '../helpers/env.ts';

const data = randomBytes(5 * 1024 * 1024 + 333);
let dir: string;
let server: https.Server;
let url: string;

beforeAll(async () => {
  dir = tempDir('wire-tls-');
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'srv.key', '-out', 'srv.csr');
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'ext.cnf', '-out', 'srv.pem');
  server = https.createServer({ key: readFileSync(join(dir, 'srv.key')), cert: readFileSync(join(dir, 'srv.pem')) }, (req, res) => {
    if (req.url === '/chunked') {
      res.writeHead(200);
      for (let i = 0; i < data.length; i += 300_001) res.write(data.subarray(i, i + 300_001));
      res.end();
    } else res.writeHead(200, { 'content-length': data.length }).end(data);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Run wireGet in a child that trusts our CA; resolves with what it printed. */
function childGet(href: string): Promise<string> {
  const script = join(dir, 'get.mts');
  const wire = join(process.cwd(), 'src/lfs/wire.ts');
  writeFileSync(
    script,
    `import { createHash } from 'node:crypto';\nimport { wireGet } from ${JSON.stringify(wire)};\n` +
      `const res = await wireGet(${JSON.stringify(href)}, { headers: {}, userAgent: 't', timeoutMs: 10000 });\n` +
      `const h = createHash('sha256'); let n = 0;\nawait res.pipe((b) => { h.update(b); n += b.length; });\n` +
      `console.log(res.statusCode, n, h.digest('hex'));\n`,
  );
  return new Promise((resolve, reject) => {
    const child = spawn(join(process.cwd(), 'node_modules/.bin/tsx'), [script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`child exited ${code}: ${err.slice(-2000)}`))));
  });
}

describe('wire GET over https', () => {
  it('reads a Content-Length and a chunked body byte for byte from a server whose CA is trusted', async () => {
    expect(await childGet(`${url}/len`)).toBe(`200 ${data.length} ${sha(data)}`);
    expect(await childGet(`${url}/chunked`)).toBe(`200 ${data.length} ${sha(data)}`);
  }, 60_000);

  it('an untrusted certificate is a NetworkError, not a body', async () => {
    await expect(wireGet(`${url}/len`, { headers: {}, userAgent: 't', timeoutMs: 5000 })).rejects.toMatchObject({ code: 'NetworkError' });
  });
});
