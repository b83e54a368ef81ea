/**
 * Sign commits as `git commit -S` would, with git's own signing config:
 * `gpg.format` (openpgp, the default, or ssh), `user.signingkey`, and
 * `gpg.program` / `gpg.ssh.program`. The config is read by the stock `git`
 * (so includes, conditional includes and `-c` via GIT_CONFIG_* apply), and
 * the signature is made by the same program git would run, so a key in an
 * agent, on a smartcard or behind a pinentry works as it does for git.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GitError, UsageError } from '../errors.ts';

export type Signer = (payload: string) => Promise<string>;

export interface SigningConfig {
  format: 'openpgp' | 'ssh';
  key: string;
  program: string;
}

/** Read git's signing config in `repoDir`; a missing key is a usage error, found before anything is committed. */
export async function signingConfig(repoDir: string, env: NodeJS.ProcessEnv): Promise<SigningConfig> {
  const get = async (key: string): Promise<string | undefined> => {
    const r = await run('git', ['config', '--get', key], { cwd: repoDir, env });
    return r.code === 0 ? r.stdout.trim() || undefined : undefined;
  };
  const format = (await get('gpg.format')) ?? 'openpgp';
  if (format !== 'openpgp' && format !== 'ssh') throw new UsageError(`--sign: gpg.format ${JSON.stringify(format)} is not supported (openpgp or ssh)`);
  let key = await get('user.signingkey');
  if (format === 'ssh') {
    if (!key) throw new UsageError('--sign: gpg.format is ssh but user.signingkey is not set (git config user.signingkey ~/.ssh/id_ed25519)');
    return { format, key: key.startsWith('~/') && env.HOME ? join(env.HOME, key.slice(2)) : key, program: (await get('gpg.ssh.program')) ?? 'ssh-keygen' };
  }
  // As git does without user.signingkey: the committer's identity picks the key.
  if (!key) {
    const ident = await run('git', ['var', 'GIT_COMMITTER_IDENT'], { cwd: repoDir, env });
    key = ident.stdout.replace(/\s+\d+\s+[+-]\d{4}\s*$/, '').trim();
    if (ident.code !== 0 || !key) throw new UsageError('--sign: set user.signingkey (or user.name and user.email) for gpg to pick a key');
  }
  return { format, key, program: (await get('gpg.openpgp.program')) ?? (await get('gpg.program')) ?? 'gpg' };
}

/**
 * The signer a command uses: with `--sign`, or when git itself would sign
 * (`commit.gpgsign=true`), so a publisher who set that up for `git commit`
 * does not push unsigned modelsync commits that verifying sites refuse.
 */
export async function commandSigner(sign: boolean | undefined, repoDir: string, env: NodeJS.ProcessEnv): Promise<Signer | undefined> {
  if (sign === false) return undefined;
  if (!sign) {
    const r = await run('git', ['config', '--type=bool', '--get', 'commit.gpgsign'], { cwd: repoDir, env });
    if (r.code !== 0 || r.stdout.trim() !== 'true') return undefined;
  }
  return gitSigner(repoDir, env);
}

export async function gitSigner(repoDir: string, env: NodeJS.ProcessEnv): Promise<Signer> {
  const cfg = await signingConfig(repoDir, env);
  return (payload) => (cfg.format === 'ssh' ? signSsh(cfg, payload, env) : signPgp(cfg, payload, env));
}

async function signPgp(cfg: SigningConfig, payload: string, env: NodeJS.ProcessEnv): Promise<string> {
  // The arguments git itself passes (gpg-interface.c, sign_buffer_gpg).
  const r = await run(cfg.program, ['--status-fd=2', '-bsau', cfg.key], { env, input: payload });
  if (r.code !== 0 || !/^\[GNUPG:\] SIG_CREATED /m.test(r.stderr) || !r.stdout.includes('-----BEGIN PGP SIGNATURE-----')) {
    throw new GitError(`--sign: ${cfg.program} could not sign with key ${JSON.stringify(cfg.key)}: ${lastLines(r.stderr.replace(/^\[GNUPG:\].*\n?/gm, ''))}`, { program: cfg.program });
  }
  return r.stdout;
}

async function signSsh(cfg: SigningConfig, payload: string, env: NodeJS.ProcessEnv): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'modelsync-sign-'));
  try {
    const file = join(dir, 'payload');
    await writeFile(file, payload);
    let keyArgs = ['-f', cfg.key];
    if (cfg.key.startsWith('key::') || /^(ssh-|ecdsa-|sk-)/.test(cfg.key)) {
      // A literal public key: the private half is in ssh-agent (-U), as git does.
      const pub = join(dir, 'key.pub');
      await writeFile(pub, `${cfg.key.replace(/^key::/, '')}\n`);
      keyArgs = ['-f', pub, '-U'];
    }
    const r = await run(cfg.program, ['-Y', 'sign', '-n', 'git', ...keyArgs, file], { env });
    if (r.code !== 0) throw new GitError(`--sign: ${cfg.program} -Y sign could not sign with ${cfg.key}: ${lastLines(r.stderr)}`, { program: cfg.program });
    return await readFile(`${file}.sig`, 'utf8');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function lastLines(s: string): string {
  return s.trim().split('\n').slice(-3).join('; ') || 'no output';
}

function run(cmd: string, args: string[], opts: { cwd?: string; env: NodeJS.ProcessEnv; input?: string }): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => done({ code: 127, stdout, stderr: `${cmd}: ${err.message}` }));
    child.on('close', (code) => done({ code: code ?? 1, stdout, stderr }));
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}
