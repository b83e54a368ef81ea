/**
 * `modelsync init`: a new registry repository with the standard layout,
 * .gitattributes routing model files through LFS, the hooks, and (unless
 * asked not to) the example models published through the same code path as
 * `modelsync publish`, so the new repository holds LFS pointers and its
 * git-lfs cache holds the objects, exactly as after a real publish.
 */
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import git from 'isomorphic-git';
import { InterruptedError, UsageError, errorMessage } from '../errors.ts';
import { PROJECT_ROOT } from '../paths.ts';
import { pathExists, readFileOrNull } from '../util/fsutil.ts';
import { checkInterrupted } from './interrupt.ts';
import { EMPTY_MODEL_REGISTRY } from './edit-registry.ts';
import { commitChanges, currentBranch, branchHead, type FileChange, type WorkRepo } from './git-repo.ts';
import { GROUPS_DIR, HOOKS_DIR, MANIFEST_NAME, MODEL_REGISTRY_FILE, REGISTRY_DIR, SITES_DIR, TEMPLATES_DIR } from './layout.ts';
import { publishVersion, type PublishResult } from './publish.ts';
import { ManifestFile, ModelRegistryFile } from './schema.ts';
import { inferScheme, sortVersions } from './versions.ts';
import { parseYamlFile } from './yaml-file.ts';

/** This project's root: the example registry, hooks and schemas ship with it. */
export { PROJECT_ROOT };

/**
 * What a registry's .gitattributes says: everything under registry/ is an
 * LFS object except the YAML (manifests, model_registry.yaml) and notes,
 * which reviewers must be able to diff.
 */
export const REGISTRY_GITATTRIBUTES = `# modelsync registry: model files are Git LFS objects; YAML and notes stay
# plain text so pull requests show what changes.
registry/** filter=lfs diff=lfs merge=lfs -text
registry/**/*.yaml !filter !diff !merge text eol=lf
registry/**/*.md !filter !diff !merge text
*.yaml text eol=lf
*.j2 text eol=lf
`;

const README = `# Model registry

Managed with modelsync: Git says which model versions run on
which site; Git LFS holds the files.

- \`registry/model_registry.yaml\`: the current (and previous) version of every model.
- \`registry/<model>/<version>/\`: one immutable version: \`manifest.yaml\` and the files (LFS pointers).
- \`sites/<site>.yaml\`, \`sites/groups/<group>.yaml\`: what each site runs.
- \`templates/\`: config files rendered on sites (Jinja-compatible).
- \`hooks/\`: git hooks (installed with \`modelsync hooks install\`): validate before commit and push,
  push at once after a commit on the default branch.
- \`schemas/\`: JSON Schemas for editors (yaml-language-server).

Publish: \`modelsync publish <model> <version> <files...>\`. Roll back: \`modelsync rollback <model>\`.
`;

const SITES_README = `# Sites

One file per site (\`<site>.yaml\`) and shared defaults in \`groups/<group>.yaml\`.
See the schema in ../schemas/site.schema.json.
`;

export interface InitRequest {
  dir: string;
  branch: string;
  /** Publish the example models, sites and templates. */
  example: boolean;
  env: NodeJS.ProcessEnv;
  /** Where the example and hooks come from (default: this project). */
  sourceRoot?: string;
  /** Ctrl-C: stops, and removes what init created. */
  signal?: AbortSignal;
}

export interface InitResult {
  dir: string;
  branch: string;
  created: boolean;
  commits: string[];
  published: Array<Pick<PublishResult, 'model' | 'version' | 'commit'>>;
  lfsFilterConfigured: boolean;
}

export async function initRegistry(req: InitRequest): Promise<InitResult> {
  const why = branchNameProblem(req.branch);
  if (why) throw new UsageError(`invalid --branch ${JSON.stringify(req.branch)}: ${why}`, { branch: req.branch });
  const dir = resolve(req.dir);
  const madeDir = await makeDirectory(dir);
  const before = new Set(await fsp.readdir(dir));
  const attributesBefore = await readFileOrNull(join(dir, '.gitattributes'));
  const createsRepo = !before.has('.git');
  try {
    return await initInto(dir, req);
  } catch (err) {
    // Like a failed clone: what init created goes, so running it again starts clean.
    if (madeDir) await fsp.rm(madeDir, { recursive: true, force: true }).catch(() => {});
    else if (createsRepo) {
      for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
        if (!before.has(name)) await fsp.rm(join(dir, name), { recursive: true, force: true }).catch(() => {});
      }
      if (attributesBefore) await fsp.writeFile(join(dir, '.gitattributes'), attributesBefore).catch(() => {});
    } else if (err instanceof InterruptedError) {
      throw new InterruptedError(`init was interrupted: ${dir} (an existing repository) may hold some of its commits; look at git log before running it again`, { dir });
    }
    throw err;
  }
}

/**
 * Why `name` cannot be a branch (git check-ref-format's rules, for one
 * component or several), or null.
 */
export function branchNameProblem(name: string): string | null {
  if (name === '') return 'it is empty';
  if (name === '@' || name.includes('@{')) return 'it may not be "@" or contain "@{"';
  if (name.startsWith('-')) return 'it may not start with "-"';
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(name)) return 'it may not contain spaces, control characters or any of ~ ^ : ? * [ \\';
  if (name.includes('..')) return 'it may not contain ".."';
  for (const part of name.split('/')) {
    if (part === '') return 'it may not start or end with "/" or contain "//"';
    if (part.startsWith('.')) return 'no part of it may start with "."';
    if (part.endsWith('.lock')) return 'no part of it may end with ".lock"';
  }
  if (name.endsWith('.')) return 'it may not end with "."';
  return null;
}

/**
 * Create `dir` and any missing parents, one level at a time (a recursive
 * mkdir in some places, /proc for one, spins forever in Node); returns the
 * outermost directory created, or null when `dir` existed.
 */
async function makeDirectory(dir: string): Promise<string | null> {
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    let st;
    try {
      st = await fsp.stat(d);
    } catch (err) {
      // ENOTDIR: a parent is a file, which the next step up reports by name.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new UsageError(`cannot create ${dir}: ${errorMessage(err)}`, { dir });
      missing.push(d);
      if (dirname(d) === d) break;
      continue;
    }
    if (!st.isDirectory()) throw new UsageError(`${d} is not a directory; cannot create a registry in ${dir}`, { dir });
    break;
  }
  for (const d of [...missing].reverse()) {
    try {
      await fsp.mkdir(d);
    } catch (err) {
      if (missing.at(-1) !== d) await fsp.rm(missing.at(-1)!, { recursive: true, force: true }).catch(() => {});
      throw new UsageError(`cannot create ${d}: ${errorMessage(err)}`, { dir });
    }
  }
  return missing.at(-1) ?? null;
}

async function initInto(dir: string, req: InitRequest): Promise<InitResult> {
  const src = req.sourceRoot ?? PROJECT_ROOT;
  if (await pathExists(join(dir, MODEL_REGISTRY_FILE))) throw new UsageError(`${dir} is already a modelsync registry; nothing was changed`, { dir });
  for (const p of [REGISTRY_DIR, SITES_DIR, HOOKS_DIR]) {
    if (await pathExists(join(dir, p))) throw new UsageError(`${dir} already has a ${p}/ that init would overwrite; nothing was changed`, { dir, path: p });
  }

  const created = !(await pathExists(join(dir, '.git')));
  const repo: WorkRepo = { dir, gitdir: join(dir, '.git') };
  if (created) {
    await git.init({ fs, dir, defaultBranch: req.branch });
    // isomorphic-git's init assumes a case-insensitive file system without symlinks; say what is true here.
    await setConfig(repo, 'core.ignorecase', process.platform === 'darwin' || process.platform === 'win32' ? 'true' : 'false');
    await setConfig(repo, 'core.symlinks', process.platform === 'win32' ? 'false' : 'true');
    await setConfig(repo, 'core.logallrefupdates', 'true');
    // isomorphic-git also writes filemode = false, which makes git ignore executable bits (hooks/ among them).
    await setConfig(repo, 'core.filemode', (await fileModeWorks(join(repo.gitdir, 'config'))) ? 'true' : 'false');
  }
  const branch = await currentBranch(repo);
  if (!created && (await branchHead(repo, branch)) === null && branch !== req.branch) {
    // An empty existing repo: follow --branch rather than whatever HEAD happened to name.
    await git.writeRef({ fs, gitdir: repo.gitdir, ref: 'HEAD', value: `refs/heads/${req.branch}`, symbolic: true, force: true });
  }
  const target = await currentBranch(repo);

  checkInterrupted(req.signal);
  const commits: string[] = [];
  const skeleton: FileChange[] = [
    { path: '.gitattributes', content: await mergedGitattributes(dir) },
    { path: 'README.md', content: README },
    { path: MODEL_REGISTRY_FILE, content: EMPTY_MODEL_REGISTRY },
    { path: `${SITES_DIR}/README.md`, content: SITES_README },
    ...(await copyDir(src, HOOKS_DIR)),
    ...(await copyDir(src, 'schemas')),
  ];
  commits.push((await commitChanges(repo, { message: 'Initialise modelsync registry', changes: skeleton, env: req.env, what: 'init', signal: req.signal })).commit);

  await setConfig(repo, 'modelsync.branch', target);
  const { lfsFilterConfigured } = await configureCheckout(repo, { env: req.env, sourceRoot: src });

  const published: InitResult['published'] = [];
  if (req.example) {
    for (const r of await publishExample(repo, src, req.env, req.signal)) {
      published.push({ model: r.model, version: r.version, commit: r.commit });
      commits.push(r.commit);
    }
    const rest: FileChange[] = [
      { path: MODEL_REGISTRY_FILE, content: await fsp.readFile(join(src, MODEL_REGISTRY_FILE)) },
      ...(await copyDir(src, SITES_DIR, (name) => name.endsWith('.yaml'))),
      ...(await copyDir(src, GROUPS_DIR, (name) => name.endsWith('.yaml'))),
      ...(await copyDir(src, TEMPLATES_DIR)),
    ];
    commits.push((await commitChanges(repo, { message: 'Add example sites and templates', changes: rest, env: req.env, what: 'init', signal: req.signal })).commit);
  }
  return { dir, branch: target, created, commits, published, lfsFilterConfigured };
}

/** Keep an existing .gitattributes and add our rules after it. */
async function mergedGitattributes(dir: string): Promise<string> {
  let existing = '';
  try {
    existing = await fsp.readFile(join(dir, '.gitattributes'), 'utf8');
  } catch {
    return REGISTRY_GITATTRIBUTES;
  }
  if (existing.includes('registry/** filter=lfs')) return existing;
  return `${existing.replace(/\n*$/, '\n')}\n${REGISTRY_GITATTRIBUTES}`;
}

/** The files of `src/<rel>` (one level) as changes at `<rel>/<name>`, keeping the executable bit. */
async function copyDir(src: string, rel: string, keep: (name: string) => boolean = () => true): Promise<FileChange[]> {
  const out: FileChange[] = [];
  let names: fs.Dirent[];
  try {
    names = await fsp.readdir(join(src, rel), { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of names.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (!e.isFile()) continue;
    if (!keep(e.name)) continue;
    const full = join(src, rel, e.name);
    const st = await fsp.stat(full);
    out.push({ path: `${rel}/${e.name}`, content: await fsp.readFile(full), executable: (st.mode & 0o111) !== 0 });
  }
  return out;
}

/** Whether the file system keeps the executable bit: git's own probe at `git init` (toggle it on the config file). */
async function fileModeWorks(probe: string): Promise<boolean> {
  if (process.platform === 'win32') return false;
  try {
    const before = (await fsp.stat(probe)).mode;
    await fsp.chmod(probe, before ^ 0o100);
    const after = (await fsp.stat(probe)).mode;
    await fsp.chmod(probe, before);
    return after !== before;
  } catch {
    return false;
  }
}

/**
 * The local git config a registry checkout needs for its hooks to work:
 * core.hooksPath, modelsync.bin (so a hook finds this modelsync without PATH)
 * and git-lfs's filter. `init` and `hooks install` (in a fresh clone) both
 * call this, so a clone is set up exactly as the repository init made.
 */
export async function configureCheckout(repo: { gitdir: string }, opts: { env: NodeJS.ProcessEnv; sourceRoot?: string }): Promise<{ bin?: string; lfsFilterConfigured: boolean }> {
  await setConfig(repo, 'core.hooksPath', HOOKS_DIR);
  const bin = join(opts.sourceRoot ?? PROJECT_ROOT, 'bin', 'modelsync.js');
  const hasBin = await pathExists(bin);
  if (hasBin) await setConfig(repo, 'modelsync.bin', bin);
  const lfsFilterConfigured = await configureLfsFilter(repo, opts.env);
  return { ...(hasBin ? { bin } : {}), lfsFilterConfigured };
}

async function setConfig(repo: { gitdir: string }, path: string, value: string): Promise<void> {
  await git.setConfig({ fs, gitdir: repo.gitdir, path, value });
}

/**
 * git-lfs's clean/smudge filter, set in the repository itself (as
 * `git lfs install --local` would), so stock git works in it even where
 * nobody ran `git lfs install`. Only when git-lfs is on PATH: a required
 * filter that is missing would make every checkout fail.
 */
async function configureLfsFilter(repo: { gitdir: string }, env: NodeJS.ProcessEnv): Promise<boolean> {
  const found = (env.PATH ?? '').split(delimiter).some((d) => d && fs.existsSync(join(d, 'git-lfs')));
  if (!found) return false;
  await setConfig(repo, 'filter.lfs.clean', 'git-lfs clean -- %f');
  await setConfig(repo, 'filter.lfs.smudge', 'git-lfs smudge -- %f');
  await setConfig(repo, 'filter.lfs.process', 'git-lfs filter-process');
  await setConfig(repo, 'filter.lfs.required', 'true');
  return true;
}

/** Publish every example version, oldest first per model, each promoted as a release would be. */
async function publishExample(repo: WorkRepo, src: string, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<PublishResult[]> {
  const root = join(src, REGISTRY_DIR);
  const declared = ModelRegistryFile.parse(parseYamlFile(MODEL_REGISTRY_FILE, await fsp.readFile(join(root, 'model_registry.yaml'), 'utf8')).value);
  const out: PublishResult[] = [];
  const models = (await fsp.readdir(root, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  for (const model of models) {
    const versions = (await fsp.readdir(join(root, model), { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
    const scheme = declared.models[model]?.version_scheme ?? inferScheme(versions) ?? 'date';
    for (const version of sortVersions(versions, scheme)) {
      const vdir = join(root, model, version);
      const text = await fsp.readFile(join(vdir, MANIFEST_NAME), 'utf8');
      const manifest = ManifestFile.parse(parseYamlFile(`${vdir}/${MANIFEST_NAME}`, text).value);
      out.push(
        await publishVersion({
          repoDir: repo.dir, model, version, promote: true, env,
          files: manifest.files.map((f) => join(vdir, f.name)),
          expectSha256: Object.fromEntries(manifest.files.map((f) => [f.name, f.sha256])),
          framework: manifest.framework, source: manifest.source, description: manifest.description,
          trainingMetrics: manifest.training_metrics, dateDeployed: manifest.date_deployed, signal,
        }),
      );
    }
  }
  return out;
}
