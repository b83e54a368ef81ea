/**
 * The Git half of the mirror, done with the stock `git` the hub already runs
 * for http-backend (a real bare repository that http-backend serves, packs
 * negotiated and written by git itself; isomorphic-git would need a second
 * object store and reimplement what `git fetch` does well):
 *
 *   1. `git fetch` the upstream's branches and tags into a hidden namespace,
 *      `refs/mirror/…`, which local agents are never shown
 *      (`uploadpack.hideRefs`), so a fetched commit is not served before its
 *      LFS objects are in place;
 *   2. the caller brings the objects in;
 *   3. the visible refs are moved in one `git update-ref --stdin` transaction.
 *
 * The token travels in the environment (`GIT_CONFIG_*`, scoped to the
 * upstream URL), never on the command line where `ps` would show it.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { GitError } from '../../errors.ts';
import { redactText } from '../../util/redact.ts';
import type { RefChange } from '../repos.ts';
import { diffRefs, ZERO_OID } from '../repos.ts';
import type { Upstream } from './upstream.ts';

const run = promisify(execFile);
export const HIDDEN = 'refs/mirror/';
/** The namespaces mirrored: branches and tags. */
const SPACES = ['refs/heads/', 'refs/tags/'];

/** One-time setup of the mirror's bare repo: read-only over HTTP, the staging namespace hidden. */
export async function configureMirrorRepo(gitDir: string): Promise<void> {
  await run('git', ['config', 'http.receivepack', 'false'], { cwd: gitDir });
  await run('git', ['config', '--replace-all', 'uploadpack.hideRefs', HIDDEN.replace(/\/$/, '')], { cwd: gitDir });
  await run('git', ['config', 'core.logAllRefUpdates', 'always'], { cwd: gitDir });
}

function fetchEnv(up: Upstream): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: 'true', SSH_ASKPASS: 'true' };
  let n = 0;
  const set = (key: string, value: string): void => {
    env[`GIT_CONFIG_KEY_${n}`] = key;
    env[`GIT_CONFIG_VALUE_${n}`] = value;
    n += 1;
  };
  // A stalled upstream (a WAN link that went quiet) fails the fetch instead of holding it forever.
  set('http.lowSpeedLimit', '1');
  set('http.lowSpeedTime', '60');
  if (up.token) set(`http.${up.repoUrl}.extraHeader`, `Authorization: Basic ${Buffer.from(`modelsync:${up.token}`).toString('base64')}`);
  env.GIT_CONFIG_COUNT = String(n);
  return env;
}

/** Fetch the upstream's branches and tags into refs/mirror/…; throws GitError (token-free) on failure. */
export async function fetchUpstream(gitDir: string, up: Upstream, signal?: AbortSignal): Promise<void> {
  const args = ['fetch', '--quiet', '--prune', '--no-tags', '--no-write-fetch-head', up.repoUrl, ...SPACES.map((s) => `+${s}*:${HIDDEN}${s.slice('refs/'.length)}*`)];
  await new Promise<void>((resolve, reject) => {
    const child = spawn('git', args, { cwd: gitDir, env: fetchEnv(up), stdio: ['ignore', 'ignore', 'pipe'], signal });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (stderr.length < 8192) stderr += d;
    });
    child.on('error', (err) => reject(new GitError(`git fetch ${up.description} failed: ${err.message}`, { upstream: up.description })));
    child.on('close', (code) => {
      if (code === 0) return resolve();
      const why = redactText(stderr.trim().split('\n').slice(-3).join('; ')) || `exit ${code}`;
      reject(new GitError(`git fetch ${up.description} failed: ${up.token ? why.split(up.token).join('***') : why}`, { upstream: up.description, exitCode: code }));
    });
  });
}

/** What moving the visible refs to the fetched ones would change (one `for-each-ref` for both sides). */
export async function pendingChanges(gitDir: string): Promise<RefChange[]> {
  const { stdout } = await run('git', ['for-each-ref', '--format=%(objectname) %(refname)', HIDDEN, ...SPACES], { cwd: gitDir, maxBuffer: 64 << 20 });
  const staged = new Map<string, string>();
  const visible = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp <= 0) continue;
    const ref = line.slice(sp + 1);
    const oid = line.slice(0, sp);
    if (ref.startsWith(HIDDEN)) staged.set(`refs/${ref.slice(HIDDEN.length)}`, oid);
    else visible.set(ref, oid);
  }
  return diffRefs(visible, staged);
}

/** Move the visible refs, all or none (each guarded by the value it had when planned). */
export async function applyChanges(gitDir: string, changes: readonly RefChange[]): Promise<void> {
  if (changes.length === 0) return;
  const lines = changes.map((c) => (c.after === ZERO_OID ? `delete ${c.ref} ${c.before}` : `update ${c.ref} ${c.after} ${c.before}`));
  await new Promise<void>((resolve, reject) => {
    const child = spawn('git', ['update-ref', '--stdin', '-m', 'modelsync mirror'], { cwd: gitDir, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (stderr += d));
    child.on('error', (err) => reject(new GitError(`git update-ref failed: ${err.message}`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new GitError(`git update-ref failed: ${stderr.trim() || `exit ${code}`}`))));
    child.stdin.end(`${lines.join('\n')}\n`);
  });
}
