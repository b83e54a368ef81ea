/**
 * Where the controller reads the registry and commits its steps: a checkout
 * (`modelsync rollout …` run by a person or by cron/CI, pushed with --push)
 * or a bare repository (the hub's own copy, inside `modelsync serve`). Both
 * read the branch head, never a working tree, and refuse a step when the
 * branch moved since it was decided.
 */
import * as fs from 'node:fs';
import git from 'isomorphic-git';
import { GitError, ValidationError, type Problem } from '../errors.ts';
import { buildTree, commitOnBranch, commitTreeOid, currentBranch, branchHead, moveBranchLocked, openWorkRepo, resolveAuthor, type TreeChange, type WorkRepo } from '../registry/git-repo.ts';
import { loadRegistry, type Registry } from '../registry/load.ts';
import { CommitSource, TreeSource, type RegistrySource } from '../registry/source.ts';
import type { Step } from './steps.ts';

export interface RolloutHead {
  commit: string;
  registry: Registry;
  problems: Problem[];
  source: RegistrySource;
}

export interface RolloutRepo {
  /** For messages. */
  readonly name: string;
  /** The branch head as a registry; null when the branch has no commits. */
  head(): Promise<RolloutHead | null>;
  /** Commit `step` on top of `base` (the head it was decided on); the new commit. */
  apply(step: Step, base: string): Promise<string>;
}

async function readHead(gitdir: string, dir: string | undefined, commit: string): Promise<RolloutHead> {
  const source = await CommitSource.open({ dir, gitdir }, commit);
  // Content was checked when it was committed; a step changes only YAML.
  const { registry, problems } = await loadRegistry(source, { checkContent: false });
  return { commit, registry, problems, source };
}

async function validateTree(repo: WorkRepo, tree: string, what: string): Promise<void> {
  const { problems } = await loadRegistry(new TreeSource({ dir: repo.dir, gitdir: repo.gitdir }, tree, 'the commit being made'), { checkContent: false });
  if (problems.length) throw new ValidationError(problems, `${what}: the registry would be invalid`);
}

/** A checkout: commits with the same machinery (and checks) as promote, working tree kept in step. */
export class CheckoutRepo implements RolloutRepo {
  /** `sign` signs each step as `--sign` does for promote, so sites that verify signatures accept the steps. */
  constructor(readonly dir: string, private readonly env: NodeJS.ProcessEnv, private readonly sign?: (payload: string) => Promise<string>) {}

  get name(): string {
    return this.dir;
  }

  async head(): Promise<RolloutHead | null> {
    const repo = await openWorkRepo(this.dir);
    const commit = await branchHead(repo, await currentBranch(repo));
    return commit ? readHead(repo.gitdir, repo.dir, commit) : null;
  }

  async apply(step: Step, base: string): Promise<string> {
    const repo = await openWorkRepo(this.dir);
    const r = await commitOnBranch(repo, {
      env: this.env, sign: this.sign, what: `refusing to commit "${step.message.split('\n')[0]}"`,
      prepare: async (b) => {
        if (b.commit !== base) throw new GitError(`branch ${b.branch} moved (now ${b.commit?.slice(0, 12)}) since the step was decided on ${base.slice(0, 12)}; nothing was committed`, { branch: b.branch });
        return { message: step.message, changes: step.changes, extra: undefined };
      },
    });
    return r.commit;
  }
}

/** A bare repository (the hub's): the caller holds the hub's lock for the repo around apply. */
export class BareRepo implements RolloutRepo {
  constructor(readonly gitdir: string, readonly branch: string, private readonly env: NodeJS.ProcessEnv = {}) {}

  get name(): string {
    return this.gitdir;
  }

  private async tip(): Promise<string | null> {
    try {
      return await git.resolveRef({ fs, gitdir: this.gitdir, ref: `refs/heads/${this.branch}` });
    } catch {
      return null;
    }
  }

  async head(): Promise<RolloutHead | null> {
    const commit = await this.tip();
    return commit ? readHead(this.gitdir, undefined, commit) : null;
  }

  async apply(step: Step, base: string): Promise<string> {
    const repo: WorkRepo = { dir: this.gitdir, gitdir: this.gitdir };
    if ((await this.tip()) !== base) throw new GitError(`branch ${this.branch} moved since the step was decided; nothing was committed`, { branch: this.branch });
    const blobs = new Map<string, TreeChange | null>();
    for (const c of step.changes) {
      blobs.set(c.path, c.content === null ? null : { oid: await git.writeBlob({ fs, gitdir: this.gitdir, blob: new TextEncoder().encode(c.content) }) });
    }
    const tree = (await buildTree(repo, await commitTreeOid(repo, base), blobs))!;
    await validateTree(repo, tree, `refusing to commit "${step.message.split('\n')[0]}"`);
    const env = { GIT_AUTHOR_NAME: 'modelsync rollout', GIT_AUTHOR_EMAIL: 'rollout@modelsync', ...this.env };
    const who = await resolveAuthor(repo, env);
    const message = step.message.endsWith('\n') ? step.message : `${step.message}\n`;
    const commit = await git.commit({ fs, gitdir: this.gitdir, message, author: who.author, committer: who.committer, tree, parent: [base], noUpdateBranch: true });
    await this.moveBranch(base, commit);
    return commit;
  }

  /**
   * Point the branch at `to` as git does: `<ref>.lock` created exclusively,
   * written, fsynced and renamed over the ref, so a reader (http-backend
   * serving an agent) never sees a half-written ref.
   */
  private async moveBranch(from: string, to: string): Promise<void> {
    await moveBranchLocked(this.gitdir, this.branch, from, to, () => this.tip());
  }
}
