/**
 * Trust: a site applies only commits signed by keys its own config trusts
 * (DESIGN.md, "Trust: signed registry commits"). The public face of the room:
 * load the policy a `verify:` block names, and verify a registry's new tip
 * (or every commit since the last applied one) in a Git directory.
 */
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import git from 'isomorphic-git';
import { ConfigError, UntrustedCommit } from '../errors.ts';
import { buildPolicy, TrustConfigError, verifyCommitObject, type TrustPolicy, type Verdict } from './policy.ts';
import { commitsToVerify, type CommitReader, type VerifyMode } from './range.ts';

export type { TrustPolicy, Verdict } from './policy.ts';
export type { VerifyMode, CommitReader } from './range.ts';
export { buildPolicy, verifyCommitObject } from './policy.ts';

/** The `verify:` block of agent.yaml (paths already absolute). */
export interface VerifySettings {
  allowed_signers?: string;
  gpg_keys?: string;
  mode: VerifyMode;
}

const policies = new Map<string, TrustPolicy>();

/**
 * Read the trust files and build the policy. Read on every pass (they are
 * small), so an operator's edit takes effect at the next pass; parsed once
 * per content, so an unchanged file costs a read, not a key parse.
 */
export async function loadPolicy(settings: VerifySettings): Promise<TrustPolicy> {
  const read = async (path: string | undefined, key: string): Promise<{ name: string; text: string } | undefined> => {
    if (!path) return undefined;
    try {
      return { name: path, text: await fsp.readFile(path, 'utf8') };
    } catch (err) {
      throw new ConfigError(`verify.${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { file: path });
    }
  };
  const allowedSigners = await read(settings.allowed_signers, 'allowed_signers');
  const gpgKeys = await read(settings.gpg_keys, 'gpg_keys');
  const key = JSON.stringify([allowedSigners, gpgKeys]);
  const hit = policies.get(key);
  if (hit) return hit;
  let policy: TrustPolicy;
  try {
    policy = await buildPolicy({ allowedSigners, gpgKeys });
  } catch (err) {
    if (err instanceof TrustConfigError) throw new ConfigError(`verify: ${err.message}`, { allowed_signers: settings.allowed_signers, gpg_keys: settings.gpg_keys });
    throw err;
  }
  if (policies.size >= 8) policies.delete(policies.keys().next().value!);
  policies.set(key, policy);
  return policy;
}

/** Verdicts by (policy, commit): a commit names immutable bytes, so a no-op pass verifies nothing again. */
const verdicts = new Map<string, Verdict>();
const VERDICT_CACHE = 4096;

export interface VerifyInput {
  policy: TrustPolicy;
  mode: VerifyMode;
  gitdir: string;
  tip: string;
  /** The last applied commit (`every` verifies what lies between it and the tip). */
  base?: string;
  /** Fetch more history when the clone is shallow (remote registries). */
  deepen?: (depth: number) => Promise<boolean>;
  now: () => Date;
}

export interface VerifyOutcome {
  /** Commits checked, newest first. */
  commits: Array<{ commit: string; signer: string; format: 'ssh' | 'openpgp'; cached: boolean }>;
  deepenedTo?: number;
}

/** Verify, or throw UntrustedCommit naming the first commit refused and why. */
export async function verifyRegistry(input: VerifyInput): Promise<VerifyOutcome> {
  const checked = await checkCommits(input, { stopAtFirst: true });
  if ('refused' in checked) throw untrusted(input.tip, checked.at, checked.refused);
  const commits: VerifyOutcome['commits'] = [];
  for (const c of checked.commits) {
    if (!c.verdict.trusted) throw untrusted(input.tip, c.commit, c.verdict.reason);
    commits.push({ commit: c.commit, signer: c.verdict.signer, format: c.verdict.format, cached: c.cached });
  }
  return { commits, ...(checked.deepenedTo ? { deepenedTo: checked.deepenedTo } : {}) };
}

export type CheckedCommits =
  | { commits: Array<{ commit: string; verdict: Verdict; cached: boolean }>; deepenedTo?: number }
  | { refused: string; at: string };

/**
 * The verdict on each commit of the range, newest first (`validate
 * --verify-signatures` lists them all); with stopAtFirst, up to the oldest
 * refused one, so a pass stops at the first commit a reader of `git log` meets.
 */
export async function checkCommits(input: VerifyInput, opts: { stopAtFirst?: boolean } = {}): Promise<CheckedCommits> {
  const reader = gitReader(input.gitdir, input.deepen);
  const range = await commitsToVerify(reader, input.tip, input.base, input.mode);
  if (!range.ok) return { refused: range.reason, at: range.at };
  const commits: Array<{ commit: string; verdict: Verdict; cached: boolean }> = [];
  for (const commit of [...range.commits].reverse()) {
    const key = `${input.policy.id}:${commit}`;
    let v = verdicts.get(key);
    const cached = v !== undefined;
    if (!v) {
      const raw = await reader.read(commit);
      v = raw ? await verifyCommitObject(input.policy, raw, input.now()) : { trusted: false, reason: 'the commit object is missing' };
      if (verdicts.size >= VERDICT_CACHE) verdicts.delete(verdicts.keys().next().value!);
      verdicts.set(key, v);
    }
    commits.unshift({ commit, verdict: v, cached });
    if (!v.trusted && opts.stopAtFirst) break;
  }
  return { commits, ...(range.deepenedTo ? { deepenedTo: range.deepenedTo } : {}) };
}

function untrusted(tip: string, commit: string, reason: string): UntrustedCommit {
  const where = commit === tip ? `commit ${commit.slice(0, 12)}` : `commit ${commit.slice(0, 12)} (below the tip ${tip.slice(0, 12)})`;
  return new UntrustedCommit(`untrusted registry ${where}: ${reason}; nothing was changed`, { commit, reason, tip });
}

export function gitReader(gitdir: string, deepen?: (depth: number) => Promise<boolean>): CommitReader {
  return {
    async read(oid) {
      try {
        const o = await git.readObject({ fs, gitdir, oid, format: 'content' });
        if (o.type !== 'commit') return undefined;
        return o.object as Uint8Array;
      } catch (err) {
        if ((err as { code?: string }).code === 'NotFoundError') return undefined;
        throw err;
      }
    },
    ...(deepen ? { deepen } : {}),
  };
}

export interface PassVerifyInput {
  settings: VerifySettings;
  gitdir: string;
  tip: string;
  /** The commit the store last applied (state.json's appliedCommit). */
  appliedCommit?: string;
  deepen?: (depth: number) => Promise<boolean>;
  now: () => Date;
  logger: { info(o: object, msg: string): void; debug(o: object, msg: string): void };
}

/**
 * The reconcile pass's trust step, right after the fetch: throws
 * UntrustedCommit (stalling: the same tip is not retried) or ConfigError;
 * otherwise the pass goes on. A tip already verified under the same keys
 * costs a map lookup.
 */
export async function verifyFetchedRegistry(input: PassVerifyInput): Promise<VerifyOutcome> {
  const started = performance.now();
  const policy = await loadPolicy(input.settings);
  const out = await verifyRegistry({ policy, mode: input.settings.mode, gitdir: input.gitdir, tip: input.tip, base: input.appliedCommit, deepen: input.deepen, now: input.now });
  const fresh = out.commits.filter((c) => !c.cached);
  const ms = Math.round((performance.now() - started) * 10) / 10;
  if (fresh.length > 0) {
    input.logger.info({ commit: input.tip, mode: input.settings.mode, verified: fresh.length, signer: out.commits[0]?.signer, ms, ...(out.deepenedTo ? { deepenedTo: out.deepenedTo } : {}) }, 'registry commit signature verified');
  } else {
    input.logger.debug({ commit: input.tip, ms }, 'registry commit already verified');
  }
  return out;
}
