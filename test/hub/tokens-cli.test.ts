/**
 * `modelsync token add|list|revoke` on a running hub's tokens file, through
 * the real CLI: the new secret works at once without a restart, only its
 * sha256 is on disk, and a revoked token stops working at once, its open
 * event stream included.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, tempDir } from '../helpers/env.ts';
import { sha256, startTestHub } from '../helpers/hub.ts';

function cli(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: tempDir('home-') } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function until(cond: () => Promise<boolean> | boolean, ms = 5000): Promise<number> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - t0;
}

describe('token management', () => {
  it('add prints the secret once and the hub takes it without a restart; revoke ends it and its event stream at once', async () => {
    const th = await startTestHub({ tokens: true, sites: ['beta'] });
    const file = th.tokensFile!;
    writeFileSync(file, `# operators' notes survive edits\n${readFileSync(file, 'utf8')}`);
    const add = cli(['token', 'add', 'gamma', '--role', 'site', '--sites', 'gamma,delta', '--tokens', file]);
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    const secret = add.stdout.trim().split('\n').at(-1)!;
    expect(secret).toMatch(/^mst_[A-Za-z0-9_-]{43}$/);
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain(secret);
    expect(text).toContain(sha256(secret));
    expect(text).toContain("# operators' notes survive edits");
    expect(statSync(file).mode & 0o777).toBe(0o600);

    const report = (site: string, token: string): Promise<Response> =>
      fetch(`${th.url}/api/v1/sites/${site}/status`, { method: 'POST', headers: { ...th.auth(token), 'content-type': 'application/json' }, body: '{"health":"Ready"}' });
    const took = await until(async () => (await report('delta', secret)).status === 200);
    console.log(`token add → accepted by the running hub after ${took} ms`);
    expect((await report('beta', secret)).status).toBe(403);

    const list = cli(['token', 'list', '--tokens', file]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^gamma +site +gamma,delta$/m);
    expect(list.stdout).toMatch(/^ci +publisher +any$/m);
    expect(list.stdout).not.toMatch(/[0-9a-f]{64}/);

    expect(cli(['token', 'add', 'gamma', '--role', 'site', '--tokens', file])).toMatchObject({ code: 2 });
    expect(cli(['token', 'add', 'x', '--role', 'admin', '--sites', 'a', '--tokens', file]).stderr).toMatch(/--sites only applies to --role site/);

    // An open event stream with the token: revoking ends it.
    const ctrl = new AbortController();
    const stream = await fetch(`${th.url}/api/v1/events`, { headers: th.auth(secret), signal: ctrl.signal });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    await reader.read();
    const ended = (async () => {
      for (;;) if ((await reader.read()).done) return Date.now();
    })();
    const revokedAt = Date.now();
    const rev = cli(['token', 'revoke', 'gamma', '--tokens', file]);
    expect(rev.code).toBe(0);
    const endedAt = await Promise.race([ended, new Promise<number>((_, no) => setTimeout(() => no(new Error('stream still open')), 3000))]);
    console.log(`token revoke → open stream ended after ${endedAt - revokedAt} ms`);
    expect((await report('delta', secret)).status).toBe(401);
    expect((await report('beta', th.secrets.site)).status).toBe(200);
    expect(cli(['token', 'revoke', 'gamma', '--tokens', file]).stderr).toMatch(/no token named "gamma"/);
    ctrl.abort();
  });

  it('a broken tokens file keeps the tokens in force', async () => {
    const th = await startTestHub({ tokens: true });
    writeFileSync(th.tokensFile!, 'tokens: [{name: x, sha256: nothex, role: admin}]\n');
    await th.hub.reloadTokens();
    expect((await fetch(`${th.url}/api/v1/sites`, { headers: th.auth(th.secrets.admin) })).status).toBe(200);
  });

  it('token add creates a missing file', () => {
    const file = join(tempDir('tok-'), 'tokens.yaml');
    const r = cli(['token', 'add', 'ci', '--role', 'publisher', '--tokens', file]);
    expect(r.code).toBe(0);
    expect(readFileSync(file, 'utf8')).toMatch(/tokens:\n {2}- \{ name: ci, sha256: [0-9a-f]{64}, role: publisher \}/);
  });
});
