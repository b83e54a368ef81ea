/**
 * What commit verification costs a site: one signature check per key type
 * (commits signed by stock `git commit -S` with real ssh-keygen and gpg
 * keys), mode every over 100 commits, and a whole no-op pass against a local
 * registry with verification off and on (the verdict is cached per commit,
 * so an unchanged tip verifies nothing again).
 */
import * as fs from 'node:fs';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import git from 'isomorphic-git';
import { reconcile } from '../src/reconcile/index.ts';
import { buildPolicy, verifyCommitObject, verifyRegistry } from '../src/trust/index.ts';
import type { BenchContext, BenchReport, BenchRow } from './run.ts';
import { benchGitEnv, makeFile, manifestYaml, run } from './common.ts';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timeEach(n: number, f: () => Promise<unknown>): Promise<number> {
  await f();
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await f();
    xs.push(performance.now() - t);
  }
  return median(xs);
}

export default async function trustBench(ctx: BenchContext): Promise<BenchReport> {
  const work = join(ctx.workDir, 'run');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const env = { ...benchGitEnv(join(work, 'home')), GNUPGHOME: join(work, 'gnupg') };
  mkdirSync(env.GNUPGHOME, { mode: 0o700 });
  const rows: BenchRow[] = [];
  const ssh: Record<string, string> = {};
  for (const [name, args] of [['ssh-ed25519', ['-t', 'ed25519']], ['ssh-rsa 3072 (rsa-sha2-512)', ['-t', 'rsa', '-b', '3072']], ['ecdsa-sha2-nistp256', ['-t', 'ecdsa', '-b', '256']]] as const) {
    const f = join(work, name.split(' ')[0]!);
    run('ssh-keygen', ['-q', ...args, '-N', '', '-f', f], { cwd: work, env });
    ssh[name] = f;
  }
  run('gpg', ['--batch', '--quiet', '--passphrase', '', '--quick-gen-key', 'Release <release@example.test>', 'ed25519', 'sign', 'never'], { cwd: work, env });
  const fpr = /^fpr:(?:[^:]*:){8}([0-9A-F]{40}):/m.exec(run('gpg', ['--with-colons', '--list-keys'], { cwd: work, env }))![1]!;
  // benchGitEnv's user.email: the principal the allowed_signers lines name.
  const email = 'bench@example.test';

  // The registry: one model, 100 versions' worth of promotions, each commit signed.
  const pub = join(work, 'publisher');
  mkdirSync(pub);
  run('git', ['init', '-q', '-b', 'main'], { cwd: pub, env });
  const sha = await makeFile(join(pub, 'registry/m/1/w.bin'), 64 << 10, 1);
  writeFileSync(join(pub, 'registry/m/1/manifest.yaml'), manifestYaml('m', '1', [{ name: 'w.bin', sha256: sha, size: 64 << 10 }]));
  mkdirSync(join(pub, 'sites'));
  writeFileSync(join(pub, 'sites/edge.yaml'), '{}\n');
  const sshArgs = ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${ssh['ssh-ed25519']}`];
  const commits: string[] = [];
  for (let i = 0; i < 101; i++) {
    writeFileSync(join(pub, 'registry/model_registry.yaml'), `models:\n  m: {current_version: "1", description: "rev ${i}"}\n`);
    run('git', ['add', '-A'], { cwd: pub, env });
    run('git', [...sshArgs, 'commit', '-q', '-S', '-m', `rev ${i}`], { cwd: pub, env });
    commits.push(run('git', ['rev-parse', 'HEAD'], { cwd: pub, env }).trim());
  }
  const gitdir = join(pub, '.git');
  const signers = Object.values(ssh).map((f) => `${email} ${readFileSync(`${f}.pub`, 'utf8').split(' ').slice(0, 2).join(' ')}`).join('\n');
  const policy = await buildPolicy({
    allowedSigners: { name: 'allowed_signers', text: `${signers}\n` },
    gpgKeys: { name: 'trusted.asc', text: run('gpg', ['--armor', '--export', fpr], { cwd: work, env }) },
  });

  // One commit per key type, verified from its raw object (no cache at this level).
  const scratch = join(work, 'scratch');
  mkdirSync(scratch);
  run('git', ['init', '-q', '-b', 'main'], { cwd: scratch, env });
  for (const [name, args] of [...Object.entries(ssh).map(([n, f]) => [n, ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${f}`]] as const), ['OpenPGP ed25519', ['-c', `user.signingkey=${fpr}`]] as const]) {
    writeFileSync(join(scratch, 'f'), name);
    run('git', ['add', '-A'], { cwd: scratch, env });
    run('git', [...args, 'commit', '-q', '-S', '-m', name], { cwd: scratch, env });
    const oid = run('git', ['rev-parse', 'HEAD'], { cwd: scratch, env }).trim();
    const bytes = (await git.readObject({ fs, gitdir: join(scratch, '.git'), oid, format: 'content' })).object as Uint8Array;
    const ms = await timeEach(50, async () => {
      const v = await verifyCommitObject(policy, bytes, new Date());
      if (!v.trusted) throw new Error(`${name}: ${v.reason}`);
    });
    rows.push({ metric: `verify one commit, ${name}`, value: ms.toFixed(2), unit: 'ms', note: 'median of 50, from the raw object' });
  }

  const tip = commits[100]!;
  const base = commits[0]!;
  const t = performance.now();
  await verifyRegistry({ policy, mode: 'every', gitdir, tip, base, now: () => new Date() });
  rows.push({ metric: 'mode every, 100 new commits, first time', value: (performance.now() - t).toFixed(1), unit: 'ms', note: 'walk + 100 ssh-ed25519 checks' });
  rows.push({ metric: 'mode every, same range again', value: (await timeEach(20, () => verifyRegistry({ policy, mode: 'every', gitdir, tip, base, now: () => new Date() }))).toFixed(2), unit: 'ms', note: 'verdicts cached per commit: the walk only' });

  // A whole pass against the local registry.
  const allowed = join(work, 'allowed_signers');
  writeFileSync(allowed, `${signers}\n`);
  const store = join(work, 'store');
  const first = await reconcile({ site: 'edge', registry: pub, store, verify: { allowed_signers: allowed, mode: 'tip' } });
  if (first.status !== 'changed') throw new Error(`first pass: ${first.status} ${JSON.stringify(first.errors)}`);
  // Interleaved, so load from other work on the machine falls on both alike.
  const times: Record<'off' | 'on', number[]> = { off: [], on: [] };
  for (let i = 0; i < 15; i++) {
    for (const mode of ['off', 'on'] as const) {
      const t0 = performance.now();
      const r = await reconcile({ site: 'edge', registry: pub, store, ...(mode === 'on' ? { verify: { allowed_signers: allowed, mode: 'tip' as const } } : {}) });
      times[mode].push(performance.now() - t0);
      if (r.status !== 'in-sync') throw new Error(`no-op pass: ${r.status} ${JSON.stringify(r.errors)}`);
    }
  }
  const off = median(times.off);
  const on = median(times.on);
  rows.push({ metric: 'no-op pass, local registry, verify off', value: off.toFixed(1), unit: 'ms', note: 'median of 15, in-process, interleaved with the next row' });
  rows.push({ metric: 'no-op pass, local registry, verify on (tip)', value: on.toFixed(1), unit: 'ms', note: 'same tip: the cached verdict, plus reading the allowed_signers file' });
  writeFileSync(join(pub, 'registry/model_registry.yaml'), 'models:\n  m: {current_version: "1", description: "new tip"}\n');
  run('git', ['add', '-A'], { cwd: pub, env });
  run('git', [...sshArgs, 'commit', '-q', '-S', '-m', 'new tip'], { cwd: pub, env });
  const changed = performance.now();
  const r = await reconcile({ site: 'edge', registry: pub, store, verify: { allowed_signers: allowed, mode: 'every' } });
  rows.push({ metric: 'pass on a new signed tip, mode every', value: (performance.now() - changed).toFixed(1), unit: 'ms', note: `${r.status}; verify-signatures step ${r.stepMs['verify-signatures'] ?? 0} ms` });
  run('gpgconf', ['--kill', 'all'], { cwd: work, env });
  rmSync(work, { recursive: true, force: true });
  return { name: 'commit verification (trust)', rows };
}
