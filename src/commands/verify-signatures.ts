/**
 * `validate --verify-signatures`: the check a site's agent makes, run in CI
 * over a pull request's commits (`--base` the target branch: every commit in
 * base..rev, merged branches included; without --base, the tip only), so a
 * merge that sites would refuse is caught before it lands.
 */
import { resolve } from 'node:path';
import { UsageError } from '../errors.ts';
import { requireGitRepo } from '../registry/open.ts';
import { CommitSource } from '../registry/source.ts';
import { checkCommits, loadPolicy, type CheckedCommits } from '../trust/index.ts';

export interface SignatureCheckOptions {
  allowedSigners?: string;
  gpgKeys?: string;
  base?: string;
  rev?: string;
}

export interface SignatureReport {
  ok: boolean;
  tip: string;
  base?: string;
  commits: Array<{ commit: string; trusted: boolean; signer?: string; reason?: string }>;
  /** Why the range itself could not be checked (history missing, too long). */
  error?: string;
}

export async function checkSignatures(repoDir: string, opts: SignatureCheckOptions, cwd: string, now: () => Date = () => new Date()): Promise<SignatureReport> {
  if (!opts.allowedSigners && !opts.gpgKeys) throw new UsageError('--verify-signatures needs --allowed-signers <file>, --gpg-keys <file> or both');
  const policy = await loadPolicy({
    ...(opts.allowedSigners ? { allowed_signers: resolve(cwd, opts.allowedSigners) } : {}),
    ...(opts.gpgKeys ? { gpg_keys: resolve(cwd, opts.gpgKeys) } : {}),
    mode: 'every',
  });
  const loc = await requireGitRepo(repoDir, '--verify-signatures', { allowLinked: true });
  const tip = (await CommitSource.open(loc, opts.rev ?? 'HEAD')).commit;
  const base = opts.base ? (await CommitSource.open(loc, opts.base)).commit : undefined;
  const checked: CheckedCommits = await checkCommits({ policy, mode: base ? 'every' : 'tip', gitdir: loc.gitdir, tip, base, now });
  if ('refused' in checked) return { ok: false, tip, ...(base ? { base } : {}), commits: [], error: checked.refused };
  const commits = checked.commits.map((c) => (c.verdict.trusted ? { commit: c.commit, trusted: true, signer: c.verdict.signer } : { commit: c.commit, trusted: false, reason: c.verdict.reason }));
  return { ok: commits.every((c) => c.trusted), tip, ...(base ? { base } : {}), commits };
}

export function renderSignatures(r: SignatureReport): string {
  const lines = r.commits.map((c) => (c.trusted ? `signed     ${c.commit.slice(0, 12)}  ${c.signer}` : `UNTRUSTED  ${c.commit.slice(0, 12)}  ${c.reason}`));
  if (r.error) lines.push(`UNTRUSTED  ${r.error}`);
  const what = r.base ? `${r.commits.length} commit${r.commits.length === 1 ? '' : 's'} in ${r.base.slice(0, 12)}..${r.tip.slice(0, 12)}` : `tip ${r.tip.slice(0, 12)}`;
  const bad = r.commits.filter((c) => !c.trusted).length;
  lines.push(r.ok ? `signatures ok: ${what}` : `signatures refused: ${bad || 'the range'}${bad ? ` of ${what}` : ''} would be refused by sites that verify`);
  return lines.join('\n');
}
