/**
 * Promote and roll back: the two ways a deployment changes without new
 * files. Both edit only the model's entry in model_registry.yaml, validate
 * the result and commit it, so the history reads as a list of deployments.
 */
import * as fs from 'node:fs';
import git from 'isomorphic-git';
import { NotFoundError, UsageError } from '../errors.ts';
import { promoteInText, setVersionsInText } from './edit-registry.ts';
import { blobAt, branchHead, commitChanges, commitTreeOid, currentBranch, openWorkRepo, readBlobText, type WorkRepo } from './git-repo.ts';
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

async function openHead(repoDir: string): Promise<Head> {
  const repo = await openWorkRepo(repoDir);
  const branch = await currentBranch(repo);
  const commit = await branchHead(repo, branch);
  if (!commit) throw new UsageError(`${repo.dir}: branch ${branch} has no commits; create a registry with \`modelsync init\``);
  const tree = await commitTreeOid(repo, commit);
  const oid = await blobAt(repo, tree, MODEL_REGISTRY_FILE);
  if (!oid) throw new UsageError(`${repo.dir} is not a modelsync registry (no ${MODEL_REGISTRY_FILE} at HEAD)`);
  return { repo, branch, commit, tree, registryText: await readBlobText(repo, oid) };
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

export async function promoteVersion(repoDir: string, model: string, version: string, env: NodeJS.ProcessEnv, message?: string): Promise<PromoteResult> {
  const h = await openHead(repoDir);
  await requirePublished(h, model, version);
  const edit = promoteInText(h.registryText, model, version, { create: true });
  const subject = message ?? `Promote ${model} ${version}`;
  const body = edit.from ? `\n\nPrevious version: ${edit.from}.` : '';
  const full = `${subject}${message ? '' : body}`;
  const r = await commitChanges(h.repo, { message: full, changes: [{ path: MODEL_REGISTRY_FILE, content: edit.text }], env, what: `refusing to promote ${model} ${version}` });
  return { model, version, from: edit.from, commit: r.commit, branch: r.branch, message: full };
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
 */
export async function rollbackModel(repoDir: string, model: string, env: NodeJS.ProcessEnv, opts: { to?: string } = {}): Promise<RollbackResult> {
  if (opts.to !== undefined) {
    const h = await openHead(repoDir);
    const from = entryIn(h.registryText, model)?.current;
    if (!from) throw new NotFoundError(`model ${JSON.stringify(model)} is not declared in ${MODEL_REGISTRY_FILE}`, { model });
    const r = await promoteVersion(repoDir, model, opts.to, env, `Roll back ${model} to ${opts.to}\n\nPromote ${opts.to} again; ${from} becomes previous_version.`);
    return { ...r, previous: from };
  }
  const h = await openHead(repoDir);
  const now = entryIn(h.registryText, model);
  if (!now?.current) throw new NotFoundError(`model ${JSON.stringify(model)} is not declared in ${MODEL_REGISTRY_FILE}`, { model });

  // Walk first parents from HEAD to the most recent commit that changed current_version.
  let commit = h.commit;
  let text: string | null = h.registryText;
  let blob = await blobAt(h.repo, h.tree, MODEL_REGISTRY_FILE);
  for (let depth = 0; depth < MAX_HISTORY; depth++) {
    const { commit: c } = await git.readCommit({ fs, gitdir: h.repo.gitdir, oid: commit });
    const parent = c.parent[0];
    const subject = c.message.split('\n')[0] ?? '';
    const parentBlob = parent ? await blobAt(h.repo, await commitTreeOid(h.repo, parent), MODEL_REGISTRY_FILE) : null;
    if (parentBlob !== blob) {
      const mine = text === null ? null : entryIn(text, model);
      const parentText = parentBlob ? await readBlobText(h.repo, parentBlob) : null;
      const before = parentText === null ? null : entryIn(parentText, model);
      if ((mine?.current ?? null) !== (before?.current ?? null)) {
        if (!before?.current) {
          throw new UsageError(
            `nothing to roll back: ${model} was introduced by commit ${commit.slice(0, 12)} ("${subject}"), there is no earlier version to return to; ` +
              'use --to <version> to promote a specific version',
            { model, commit },
          );
        }
        const edited = setVersionsInText(h.registryText, model, { current: before.current, previous: before.previous });
        const message = `Revert "${subject}"\n\nThis reverts commit ${commit}.\n`;
        const r = await commitChanges(h.repo, {
          message, changes: [{ path: MODEL_REGISTRY_FILE, content: edited }], env, what: `refusing to roll back ${model}`,
        });
        return {
          model, version: before.current, from: now.current, previous: before.previous, commit: r.commit, branch: r.branch, message,
          reverted: { commit, subject },
        };
      }
    }
    if (!parent) break;
    commit = parent;
    blob = parentBlob;
    text = parentBlob ? await readBlobText(h.repo, parentBlob) : null;
  }
  throw new UsageError(`nothing to roll back: no commit on ${h.branch} changed ${model}'s current_version`, { model });
}
