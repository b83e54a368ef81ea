/**
 * Promote and roll back: the two ways a deployment changes without new
 * files. Both edit only the model's entry in model_registry.yaml, validate
 * the result and commit it, so the history reads as a list of deployments.
 */
import * as fs from 'node:fs';
import git from 'isomorphic-git';
import { NotFoundError, UsageError } from '../errors.ts';
import { promoteInText, setVersionsInText } from './edit-registry.ts';
import { blobAt, commitOnBranch, commitTreeOid, openWorkRepo, readBlobText, type Base, type WorkRepo } from './git-repo.ts';
import { MODEL_REGISTRY_FILE, manifestPath, modelDir } from './layout.ts';
import { ModelRegistryFile } from './schema.ts';
import { parseYamlFile } from './yaml-file.ts';

export interface PromoteResult {
  model: string;
  version: string;
  /** The version current before. */
  from?: string;
  commit: string;
  branch: string;
  message: string;
  /** The version was current already: nothing was committed (`commit` is the branch head). */
  unchanged?: boolean;
}

export interface RollbackResult extends PromoteResult {
  /** The commit whose promotion was reverted (absent with --to). */
  reverted?: { commit: string; subject: string };
  /** previous_version after the rollback. */
  previous?: string;
}

interface Head {
  repo: WorkRepo;
  branch: string;
  commit: string;
  tree: string;
  registryText: string;
}

/** The branch as the commit will see it (under the repository lock), as a registry. */
async function headOf(repo: WorkRepo, base: Base): Promise<Head> {
  if (!base.commit || !base.tree) throw new UsageError(`${repo.dir}: branch ${base.branch} has no commits; create a registry with \`modelsync init\``);
  const oid = await blobAt(repo, base.tree, MODEL_REGISTRY_FILE);
  if (!oid) throw new UsageError(`${repo.dir} is not a modelsync registry (no ${MODEL_REGISTRY_FILE} at HEAD)`);
  return { repo, branch: base.branch, commit: base.commit, tree: base.tree, registryText: await readBlobText(repo, oid) };
}

async function requirePublished(h: Head, model: string, version: string): Promise<void> {
  if (await blobAt(h.repo, h.tree, manifestPath(model, version))) return;
  const { tree } = h;
  const versions: string[] = [];
  const dir = await blobDirEntries(h.repo, tree, modelDir(model));
  for (const e of dir) if (e.type === 'tree') versions.push(e.path);
  throw new NotFoundError(
    versions.length
      ? `${model} ${version} is not published (published: ${versions.join(', ')})`
      : `model ${JSON.stringify(model)} has no published versions (no ${modelDir(model)}/ at HEAD)`,
    { model, version },
  );
}

async function blobDirEntries(repo: WorkRepo, tree: string, path: string): Promise<Array<{ path: string; type: string }>> {
  let cur = tree;
  for (const part of path.split('/')) {
    const { tree: entries } = await git.readTree({ fs, gitdir: repo.gitdir, oid: cur });
    const ent = entries.find((e) => e.path === part && e.type === 'tree');
    if (!ent) return [];
    cur = ent.oid;
  }
  return (await git.readTree({ fs, gitdir: repo.gitdir, oid: cur })).tree;
}

/**
 * Thrown out of a commit's prepare step when the model is already at the
 * version asked for: decided under the repository lock, so it holds for the
 * head the commit would have been made on.
 */
class AlreadyCurrent extends Error {
  constructor(readonly branch: string, readonly commit: string, readonly previous: string | undefined) {
    super('already current');
  }

  result(model: string, version: string): RollbackResult {
    return { model, version, from: version, previous: this.previous, commit: this.commit, branch: this.branch, message: '', unchanged: true };
  }
}

async function unlessCurrent<T>(make: () => Promise<T>): Promise<T | AlreadyCurrent> {
  try {
    return await make();
  } catch (err) {
    if (err instanceof AlreadyCurrent) return err;
    throw err;
  }
}

export interface ChangeOptions {
  /** Ctrl-C: honoured until the commit is being written. */
  signal?: AbortSignal;
  /** Sign the commit (`--sign`). */
  sign?: (payload: string) => Promise<string>;
}

export async function promoteVersion(repoDir: string, model: string, version: string, env: NodeJS.ProcessEnv, opts: ChangeOptions = {}): Promise<PromoteResult> {
  const repo = await openWorkRepo(repoDir);
  const r = await unlessCurrent(() => commitOnBranch(repo, {
    env, signal: opts.signal, sign: opts.sign, what: `refusing to promote ${model} ${version}`,
    prepare: async (base) => {
      const h = await headOf(repo, base);
      await requirePublished(h, model, version);
      const now = entryIn(h.registryText, model);
      if (now?.current === version) throw new AlreadyCurrent(h.branch, h.commit, now.previous);
      const edit = promoteInText(h.registryText, model, version, { create: true });
      const message = `Promote ${model} ${version}${edit.from ? `\n\nPrevious version: ${edit.from}.` : ''}`;
      return { message, changes: [{ path: MODEL_REGISTRY_FILE, content: edit.text }], extra: { from: edit.from, message } };
    },
  }));
  if (r instanceof AlreadyCurrent) return r.result(model, version);
  return { model, version, from: r.extra.from, commit: r.commit, branch: r.branch, message: r.extra.message };
}

interface Entry {
  current?: string;
  previous?: string;
}

function entryIn(text: string, model: string): Entry | null {
  const yf = parseYamlFile(MODEL_REGISTRY_FILE, text);
  const parsed = ModelRegistryFile.safeParse(yf.value ?? {});
  const models = parsed.success ? parsed.data.models : (yf.value as { models?: Record<string, unknown> } | undefined)?.models;
  if (!models || typeof models !== 'object' || !Object.hasOwn(models, model)) return null;
  const raw = (models as Record<string, unknown>)[model] as { current_version?: unknown; previous_version?: unknown } | null;
  if (!raw || typeof raw !== 'object') return null;
  const s = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : String(v));
  return { current: s(raw.current_version), previous: s(raw.previous_version) };
}

/** History is searched this far back for the promotion to revert. */
const MAX_HISTORY = 10_000;

/**
 * Revert the last commit that changed `model`'s current_version: a new commit
 * `Revert "<subject>"` restoring the model's entry as it was before that
 * commit (previous_version included), leaving every other model alone.
 * History is followed by first parents, so a promotion merged from a pull
 * request is reverted as its merge commit, as `git revert -m 1` would.
 * With `to`, promote that version instead (the old current becomes previous).
 */
export async function rollbackModel(repoDir: string, model: string, env: NodeJS.ProcessEnv, opts: ChangeOptions & { to?: string } = {}): Promise<RollbackResult> {
  const repo = await openWorkRepo(repoDir);
  const r = await unlessCurrent(() => commitOnBranch(repo, {
    env, signal: opts.signal, sign: opts.sign, what: `refusing to roll back ${model}`,
    prepare: async (base) => {
      const h = await headOf(repo, base);
      const now = entryIn(h.registryText, model);
      if (!now?.current) throw new NotFoundError(`model ${JSON.stringify(model)} is not declared in ${MODEL_REGISTRY_FILE}`, { model });
      if (opts.to !== undefined) {
        await requirePublished(h, model, opts.to);
        if (now.current === opts.to) throw new AlreadyCurrent(h.branch, h.commit, now.previous);
        const edit = promoteInText(h.registryText, model, opts.to);
        const message = `Roll back ${model} to ${opts.to}\n\nPromote ${opts.to} again; ${now.current} becomes previous_version.`;
        return {
          message, changes: [{ path: MODEL_REGISTRY_FILE, content: edit.text }],
          extra: { version: opts.to, from: now.current, previous: now.current as string | undefined, message, reverted: undefined as RollbackResult['reverted'] },
        };
      }
      const found = await lastPromotion(h, model);
      const edited = setVersionsInText(h.registryText, model, { current: found.before.current, previous: found.before.previous });
      const message = `Revert "${found.subject}"\n\nThis reverts commit ${found.commit}.\n`;
      return {
        message, changes: [{ path: MODEL_REGISTRY_FILE, content: edited }],
        extra: { version: found.before.current, from: now.current, previous: found.before.previous, message, reverted: { commit: found.commit, subject: found.subject } },
      };
    },
  }));
  if (r instanceof AlreadyCurrent) return r.result(model, opts.to ?? '');
  const x = r.extra;
  return { model, version: x.version, from: x.from, previous: x.previous, commit: r.commit, branch: r.branch, message: x.message, reverted: x.reverted };
}

/** The most recent first-parent commit that changed the model's current_version, and the entry before it. */
async function lastPromotion(h: Head, model: string): Promise<{ commit: string; subject: string; before: { current: string; previous?: string } }> {
  let commit = h.commit;
  let text: string | null = h.registryText;
  let blob = await blobAt(h.repo, h.tree, MODEL_REGISTRY_FILE);
  for (let depth = 0; depth < MAX_HISTORY; depth++) {
    const { commit: c } = await git.readCommit({ fs, gitdir: h.repo.gitdir, oid: commit });
    const parent = c.parent[0];
    const subject = c.message.split('\n')[0] ?? '';
    const parentBlob = parent ? await blobAt(h.repo, await commitTreeOid(h.repo, parent), MODEL_REGISTRY_FILE) : null;
    const parentText: string | null = parentBlob === blob ? text : parentBlob ? await readBlobText(h.repo, parentBlob) : null;
    if (parentBlob !== blob) {
      const mine = text === null ? null : entryIn(text, model);
      const before = parentText === null ? null : entryIn(parentText, model);
      if ((mine?.current ?? null) !== (before?.current ?? null)) {
        if (!before?.current) {
          throw new UsageError(
            `nothing to roll back: ${model} was introduced by commit ${commit.slice(0, 12)} ("${subject}"), there is no earlier version to return to; ` +
              'use --to <version> to promote a specific version',
            { model, commit },
          );
        }
        return { commit, subject, before: { current: before.current, previous: before.previous } };
      }
    }
    if (!parent) break;
    commit = parent;
    blob = parentBlob;
    text = parentText;
  }
  throw new UsageError(`nothing to roll back: no commit on ${h.branch} changed ${model}'s current_version`, { model });
}
