/**
 * End to end: a real agent (and `modelsync reconcile`) with `verify:` against
 * a local registry and over HTTP against a real hub, the commits signed by
 * the stock `git commit -S` with real keys. A forged or unsigned push changes
 * nothing; the site says Stalled (untrusted) on /status and to the hub; the
 * same tip is not retried; a trusted commit moves it again.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliAsync, git, gitAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';
import { agentConfig, bytes, captureLogger, current, startAgent, waitFor } from '../agent/helpers/agent.ts';
import { effectiveSchedule } from '../../src/agent/site-schedule.ts';
import { allowedSignersLine, pgpIdentity, sshIdentity, type PgpIdentity, type SshIdentity } from './keys.ts';

const env = isolatedGitEnv();
const release = sshIdentity('ed25519', 'author@example.test');

function signedCommit(reg: TestRegistry, message: string, id: SshIdentity | PgpIdentity | null = release): string {
  reg.git('add', '-A');
  if (id) reg.git(...id.gitArgs, 'commit', '-q', '-S', '-m', message);
  else reg.git('commit', '-q', '-m', message);
  return reg.head();
}

function faceRegistry(prefix: string, gitEnv = env): TestRegistry {
  const reg = TestRegistry.init(tempDir(prefix), gitEnv);
  for (const v of ['1', '2', '3', '4']) reg.addVersion('face', v, { 'model.bin': bytes(20_000, Number(v)) });
  reg.setCurrent('face', '1');
  reg.site('alpha', {});
  return reg;
}

function trustFile(text: string): string {
  const f = join(tempDir('modelsync-trust-'), 'trust');
  writeFileSync(f, text);
  return f;
}

interface StatusDoc { health: string; commit: string | null; conditions: Array<{ type: string; status: boolean; reason: string; message: string }>; lastPass: { errors: Array<{ code: string; message: string }> } | null }

describe('agent with verify: against a local registry', () => {
  it('mode every: applies signed commits; an unsigned one in the middle changes nothing, stalls the site, is not retried; a rewritten branch recovers', async () => {
    const reg = faceRegistry('trust-local-reg-');
    const good = signedCommit(reg, 'face 1');
    const store = join(tempDir('trust-local-store-'), 'store');
    const cap = captureLogger();
    const agent = await startAgent({
      site: 'alpha', registry: reg.dir, store, listen: '127.0.0.1:0',
      verify: { allowed_signers: trustFile(allowedSignersLine(release)), mode: 'every' },
    }, { logger: cap.logger });
    await agent.whenIdle();
    expect(current(store, 'face')).toBe('1');
    expect(agent.status().health).toBe('Ready');
    expect(agent.status().conditions.find((c) => c.type === 'Stalled')).toMatchObject({ status: false });

    // Two signed commits with an unsigned one between them.
    reg.setCurrent('face', '2');
    signedCommit(reg, 'face 2');
    reg.setCurrent('face', '3');
    const unsigned = signedCommit(reg, 'face 3, unsigned', null);
    reg.setCurrent('face', '4');
    const tip = signedCommit(reg, 'face 4');
    const refused = await agent.request('manual', 'test');
    expect(refused.result.status).toBe('failed');
    expect(refused.result.errors).toEqual([expect.objectContaining({ code: 'UntrustedCommit', retry: 'stalling' })]);
    expect(refused.result.errors[0]!.message).toBe(`untrusted registry commit ${unsigned.slice(0, 12)} (below the tip ${tip.slice(0, 12)}): unsigned; nothing was changed`);
    expect(current(store, 'face')).toBe('1');

    const status = (await (await fetch(`${agent.url}/status`)).json()) as StatusDoc;
    expect(status.health).toBe('Stalled');
    expect(status.conditions.find((c) => c.type === 'Stalled')).toMatchObject({ status: true, reason: 'Untrusted', message: expect.stringContaining(unsigned.slice(0, 12)) });
    expect(status.lastPass!.errors[0]!.code).toBe('UntrustedCommit');
    expect(await (await fetch(`${agent.url}/metrics`)).text()).toContain('modelsync_untrusted{site="alpha"} 1');
    // `status --store` says it too.
    const st = await cliAsync(['status', '--store', store], { cwd: store, env });
    expect(st.stdout).toContain(`Stalled (untrusted): nothing of commit ${tip.slice(0, 12)} is applied`);

    // Not retried: a failing pass of any other kind is retried after 100 ms here. The registry
    // watch may still deliver an event of the commits above (late on a loaded machine): wait until
    // passes settle first; a refused commit retried every 100 ms never would.
    let seen = agent.passes;
    let settledSince = Date.now();
    const giveUp = Date.now() + 15_000;
    while (Date.now() - settledSince < 700) {
      if (Date.now() > giveUp) throw new Error(`passes never settle (${agent.passes}): the refused commit is being retried`);
      await new Promise((r) => setTimeout(r, 50));
      if (agent.passes !== seen) {
        seen = agent.passes;
        settledSince = Date.now();
      }
    }
    const passes = agent.passes;
    await new Promise((r) => setTimeout(r, 600));
    expect(agent.passes).toBe(passes);

    // The branch rewritten without the unsigned commit (what an operator does to recover under mode every).
    reg.git('reset', '-q', '--hard', good);
    reg.setCurrent('face', '4');
    const fixed = signedCommit(reg, 'face 4, signed');
    const ok = await agent.request('manual', 'test');
    expect(ok.result.status).toBe('changed');
    expect(ok.result.commit).toBe(fixed);
    expect(current(store, 'face')).toBe('4');
    expect(agent.status().health).toBe('Ready');
    expect(agent.status().conditions.find((c) => c.type === 'Stalled')).toMatchObject({ status: false, reason: 'None' });
    expect(agent.metricsText()).toContain('modelsync_untrusted{site="alpha"} 0');
    expect(cap.lines().some((l) => l.msg === 'registry commit signature verified' && l.commit === fixed)).toBe(true);
  });

  it('mode tip, OpenPGP: modelsync reconcile refuses an unsigned tip, a key not trusted, and a trusted signature over a changed tree', async () => {
    const pgp = pgpIdentity({ email: 'author@example.test' });
    const stranger = pgpIdentity({ email: 'author@example.test' });
    const gpgEnv = { ...env, GNUPGHOME: pgp.gnupgHome };
    const reg = faceRegistry('trust-pgp-reg-', gpgEnv);
    signedCommit(reg, 'face 1', pgp);
    const store = join(tempDir('trust-pgp-store-'), 'store');
    const keys = trustFile(pgp.armoredPublic);
    const reconcile = (): Promise<{ status: number; stdout: string; stderr: string }> =>
      cliAsync(['reconcile', '--site', 'alpha', '--registry', reg.dir, '--store', store, '--verify-gpg-keys', keys, '--json'], { cwd: store.replace(/store$/, ''), env });
    const first = await reconcile();
    expect(first.status, first.stderr).toBe(0);
    expect(current(store, 'face')).toBe('1');

    reg.setCurrent('face', '2');
    const unsigned = signedCommit(reg, 'face 2', null);
    const r1 = await reconcile();
    expect(r1.status).toBe(1);
    expect(JSON.parse(r1.stdout).errors[0]).toMatchObject({ code: 'UntrustedCommit', message: `untrusted registry commit ${unsigned.slice(0, 12)}: unsigned; nothing was changed` });
    expect(current(store, 'face')).toBe('1');

    git([...stranger.gitArgs, 'commit', '-q', '--amend', '--no-edit', '-S'], { cwd: reg.dir, env: { ...env, GNUPGHOME: stranger.gnupgHome } });
    const byStranger = await reconcile();
    expect(JSON.parse(byStranger.stdout).errors[0].message).toMatch(/signed by OpenPGP key [0-9A-F]{16}, which is not in gpg_keys/);
    expect(current(store, 'face')).toBe('1');

    // A commit signed by the trusted key, then its tree swapped for another (face 3) with the signature kept:
    // the forged object is written with stock git and put at the branch tip, as a forged push would.
    reg.git(...pgp.gitArgs, 'commit', '-q', '--amend', '--no-edit', '-S');
    const signed = reg.head();
    reg.setCurrent('face', '3');
    reg.git('add', '-A');
    const otherTree = reg.git('write-tree');
    const forged = reg.git('cat-file', 'commit', signed).replace(/^tree [0-9a-f]{40}/, `tree ${otherTree}`);
    const forgedOid = git(['hash-object', '-t', 'commit', '-w', '--stdin'], { cwd: reg.dir, env, input: `${forged}\n` }).stdout.trim();
    reg.git('update-ref', 'refs/heads/main', forgedOid);
    const r2 = await reconcile();
    expect(r2.status).toBe(1);
    expect(JSON.parse(r2.stdout).errors[0]).toMatchObject({ code: 'UntrustedCommit', message: expect.stringMatching(new RegExp(`^untrusted registry commit ${forgedOid.slice(0, 12)}: bad OpenPGP signature by key`)) });
    expect(current(store, 'face')).toBe('1');

    // The honestly signed commit applies.
    reg.git('update-ref', 'refs/heads/main', signed);
    const r3 = await reconcile();
    expect(r3.status, r3.stdout).toBe(0);
    expect(current(store, 'face')).toBe('2');
  });
});

describe('the systemd timer\'s schedule', () => {
  it('is not taken from a tip the site would refuse', async () => {
    const reg = faceRegistry('trust-sched-reg-');
    reg.site('alpha', { schedule: '*/5 * * * *' });
    signedCommit(reg, 'every five minutes');
    const verify = { allowed_signers: trustFile(allowedSignersLine(release)), mode: 'every' as const };
    const cfg = agentConfig({ site: 'alpha', registry: reg.dir, store: join(tempDir('trust-sched-'), 'store'), verify });
    expect(await effectiveSchedule(cfg)).toMatchObject({ schedule: '*/5 * * * *', source: 'site' });
    reg.site('alpha', { schedule: '* * * * *' });
    const unsigned = signedCommit(reg, 'every minute, unsigned', null);
    const choice = await effectiveSchedule(cfg);
    expect(choice.schedule).not.toBe('* * * * *');
    expect(choice.note).toContain(`untrusted registry commit ${unsigned.slice(0, 12)}: unsigned`);
  });
});

describe('agent with verify: over HTTP against a hub', () => {
  it('mode every through a shallow clone: deepens to the last applied commit, refuses an unsigned commit under a signed tip, reports Stalled (untrusted) to the hub', async () => {
    const th = await startTestHub({ tokens: true, sites: ['alpha'] });
    const reg = faceRegistry('trust-hub-reg-');
    signedCommit(reg, 'face 1');
    reg.git('remote', 'add', 'origin', th.repoUrl('registry', th.secrets.publisher));
    await gitAsync(['push', '-q', '-u', 'origin', 'main'], { cwd: reg.dir, env });
    const store = join(tempDir('trust-hub-store-'), 'store');
    const cap = captureLogger();
    const agent = await startAgent({
      site: 'alpha', registry: `${th.url}/registry.git`, store, hub: th.url, listen: '127.0.0.1:0',
      verify: { allowed_signers: trustFile(allowedSignersLine(release)), mode: 'every' },
    }, { env: { MODELSYNC_TOKEN: th.secrets.bySite.alpha }, logger: cap.logger });
    await agent.whenIdle();
    expect(current(store, 'face')).toBe('1');

    // Three signed commits pushed at once, after the site lost its registry cache (a disk
    // cleanup, a reinstall that kept the state): its fresh depth-1 clone must deepen to verify
    // each. (A kept cache fetches every commit since its tip, as the unsigned case below does.)
    rmSync(join(store, 'registry.git'), { recursive: true, force: true });
    for (const v of ['2', '3', '4']) {
      reg.setCurrent('face', v);
      signedCommit(reg, `face ${v}`);
    }
    await gitAsync(['push', '-q', 'origin', 'main'], { cwd: reg.dir, env });
    await waitFor(() => current(store, 'face') === '4', 'the signed commits to apply');
    const verified = cap.lines().find((l) => l.msg === 'registry commit signature verified' && l.commit === reg.head());
    expect(verified).toMatchObject({ verified: 3, mode: 'every' });
    expect(verified!.deepenedTo).toBeGreaterThan(1);

    // An unsigned commit, then a signed one over it.
    reg.setCurrent('face', '2');
    const unsigned = signedCommit(reg, 'face 2 again, unsigned', null);
    reg.setCurrent('face', '3');
    const tip = signedCommit(reg, 'face 3 again');
    await gitAsync(['push', '-q', 'origin', 'main'], { cwd: reg.dir, env });
    await waitFor(() => agent.status().health === 'Stalled', 'the site to stall');
    expect(current(store, 'face')).toBe('4');
    await waitFor(async () => {
      const res = await fetch(`${th.url}/api/v1/sites`, { headers: th.auth(th.secrets.admin) });
      const { sites } = (await res.json()) as { sites: Array<StatusDoc & { site: string }> };
      const s = sites.find((x) => x.site === 'alpha');
      return s?.health === 'Stalled' && s.commit === tip && s.conditions.some((c) => c.type === 'Stalled' && c.status && c.reason === 'Untrusted' && c.message.includes(unsigned.slice(0, 12)));
    }, 'the hub to hold the Stalled (untrusted) report');
    const fleet = await cliAsync(['status', '--hub', th.url], { cwd: store, env: { ...env, MODELSYNC_TOKEN: th.secrets.admin } });
    expect(fleet.stdout).toMatch(new RegExp(`^alpha +Stalled +${tip.slice(0, 12)} .*UntrustedCommit: untrusted registry commit ${unsigned.slice(0, 12)}`, 'm'));
  });
});
