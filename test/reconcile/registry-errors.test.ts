/**
 * Fetching the registry from a remote: what is kept in the site's registry
 * cache, and errors that send the operator the right way (a stalled server,
 * a full disk), against stock `git http-backend` and a server that stalls.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { reconcile } from '../../src/reconcile/index.ts';
import { gitAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { canMount, mountTmpfs } from '../helpers/tmpfs.ts';
import { LfsTestServer } from '../lfs/server.ts';
import { TestRegistry } from './helpers/registry.ts';

const TOKEN = 'query-token-7d3e91b2';

function allFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...allFiles(p));
    else out.push(p);
  }
  return out;
}

let env: NodeJS.ProcessEnv;
let reg: TestRegistry;
let gitRoot: string;
beforeAll(async () => {
  env = isolatedGitEnv();
  reg = TestRegistry.init(tempDir('reg-errors-'), env);
  reg.addVersion('tiny', '1', { 'm.txt': 'model bytes\n' });
  reg.setCurrent('tiny', '1');
  reg.site('alpha', {});
  // A plain (non-LFS) file at the root, so the pack needs a few hundred KiB of disk.
  writeFileSync(join(reg.dir, 'notes.txt'), randomBytes(400_000).toString('base64'));
  reg.commit('v1');
  gitRoot = tempDir('reg-errors-git-');
  await gitAsync(['init', '-q', '--bare', join(gitRoot, 'repo.git')], { cwd: gitRoot, env });
  await gitAsync(['-c', 'core.hooksPath=/nonexistent', 'push', '-q', join(gitRoot, 'repo.git'), 'main'], { cwd: reg.dir, env });
});

const servers: LfsTestServer[] = [];
const raw: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const s of raw.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function host(): Promise<LfsTestServer> {
  const s = await LfsTestServer.start({ token: TOKEN, gitRoot });
  servers.push(s);
  for (const f of allFiles(join(reg.dir, '.git/lfs/objects'))) s.addFile(f.split('/').pop()!, f);
  return s;
}

describe('the registry cache keeps no credentials (issue 9 item 4)', () => {
  it('a token in the URL query string works for Git and is never written under <store>/registry.git', async () => {
    const s = await host();
    const store = join(tempDir(), 'store');
    const r = await reconcile({ site: 'alpha', registry: `${s.remoteUrl}?private_token=${TOKEN}`, store });
    // Git got the token; LFS does not take it from the query (docs/lfs.md: give it as token_file).
    expect(r.commit).toBe(reg.head());
    expect(r.errors.map((e) => e.message).join('\n')).not.toMatch(/cannot fetch the registry/);
    const config = readFileSync(join(store, 'registry.git/config'), 'utf8');
    expect(config).toContain(`url = ${s.remoteUrl}?private_token=`);
    for (const f of allFiles(join(store, 'registry.git'))) expect(readFileSync(f).includes(TOKEN), f).toBe(false);
    expect(readFileSync(join(store, 'state.json'), 'utf8')).not.toContain(TOKEN);
    // The query went to the Git requests only.
    expect(s.requests.filter((q) => q.path.includes('/info/refs')).every((q) => q.path.includes(`private_token=${TOKEN}`))).toBe(true);
  });

  it('a user:token in the URL is never written there either, and a rotated token keeps the cache', async () => {
    const s = await host();
    const store = join(tempDir(), 'store');
    const url = (tok: string) => s.remoteUrl.replace('http://', `http://deploy:${tok}@`);
    expect((await reconcile({ site: 'alpha', registry: url(TOKEN), store })).errors).toEqual([]);
    for (const f of allFiles(join(store, 'registry.git'))) expect(readFileSync(f).includes(TOKEN), f).toBe(false);
    expect(readFileSync(join(store, 'registry.git/config'), 'utf8')).toMatch(new RegExp(`url = ${s.remoteUrl}$`, 'm'));
    // A new token in the URL is the same registry: the cache is kept, not cloned again.
    const before = statSync(join(store, 'registry.git/config')).ino;
    expect((await reconcile({ site: 'alpha', registry: url('rotated-token-000'), store })).errors.map((e) => e.code)).toEqual(['AuthError']);
    expect(statSync(join(store, 'registry.git/config')).ino).toBe(before);
  });
});

describe('registry fetch errors that say what happened (issue 9 item 6)', () => {
  it('a server that stalls mid-answer: "no data from … for N s", not "cannot reach the server (ECONNRESET)"', async () => {
    const server = createServer((req, res) => {
      // Headers and the first bytes of a ref advertisement, then silence.
      res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-advertisement' });
      res.write('001e# service=git-upload-pack\n0000');
    });
    raw.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const started = Date.now();
    const r = await reconcile({ site: 'alpha', registry: `${origin}/repo.git`, store: join(tempDir(), 'store'), networkTimeoutMs: 400 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(r.errors[0]!.message).toContain(`no data from ${origin} for 0.4 s`);
    expect(r.errors[0]!.message).not.toMatch(/ECONNRESET|cannot reach/);
  });
});

const tmpfs = (opts: string): string => mountTmpfs(opts, 'reg-errors-mnt-');

describe.skipIf(!canMount())('a full disk is reported as a full disk (issue 9 item 6)', () => {
  it('out of bytes while the registry pack is written: disk full, with what is left, not a NetworkError', async () => {
    const s = await host();
    const mnt = tmpfs('size=200k');
    const r = await reconcile({ site: 'alpha', registry: s.remoteUrl, store: join(mnt, 'store'), token: TOKEN });
    expect(r.errors[0]).toMatchObject({ code: 'StoreError', data: { diskFull: true } });
    expect(r.errors[0]!.message).toMatch(/disk full while writing the registry cache \(ENOSPC\); the filesystem of .* is out of space: \d+ (bytes|KiB) and \d+ inodes free/);
    // The lock did not stay behind (an empty one would hold off the next pass for 5 s).
    expect(readdirSync(join(mnt, 'store')).filter((n) => n.includes('lock'))).toEqual([]);
  });

  it('out of inodes: disk full naming inodes, never "ENOENT mkdir"', async () => {
    const s = await host();
    const mnt = tmpfs('size=8m,nr_inodes=24');
    const r = await reconcile({ site: 'alpha', registry: s.remoteUrl, store: join(mnt, 'store'), token: TOKEN });
    expect(r.errors[0]!.message).toMatch(/disk full while writing the registry cache/);
    expect(r.errors[0]!.message).toMatch(/out of inodes: .* and 0 inodes free/);
    // Recording the failed pass hits the same wall, and says so the same way.
    for (const e of r.errors) expect(e.message).toMatch(/disk full/);
    expect(r.errors.map((e) => e.message).join('\n')).not.toMatch(/ENOENT/);
  });

  it('store objects out of inodes: the object directories say disk full, not ENOENT', async () => {
    const mnt = tmpfs('size=8m,nr_inodes=64');
    const store = join(mnt, 'store');
    mkdirSync(store);
    // Use up the inodes but a few, after the store's own directories exist.
    const first = await reconcile({ site: 'alpha', registry: reg.dir, store, dryRun: true });
    expect(first.errors).toEqual([]);
    const filler = join(mnt, 'filler');
    mkdirSync(filler);
    for (let i = 0; ; i++) {
      try {
        writeFileSync(join(filler, String(i)), '');
      } catch {
        break;
      }
    }
    expect(statSync(filler).isDirectory()).toBe(true);
    const r = await reconcile({ site: 'alpha', registry: reg.dir, store });
    const messages = [...r.errors, ...r.models.map((m) => m.error).filter((e) => e !== undefined)].map((e) => e!.message).join('\n');
    expect(messages).toMatch(/disk full/);
    expect(messages).not.toMatch(/ENOENT/);
  });
});
