/**
 * What the registry's own history says happened: promotions, rollbacks and
 * reverts (commits that touched model_registry.yaml, as `promote`,
 * `rollback` and `publish` word them), and the rollouts in progress
 * (`registry/rollouts/*.yaml` at the tip). Read with stock git from the
 * hub's bare repositories, cached per repository until a push moves a ref.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';

const run = promisify(execFile);

export type DeployKind = 'promotion' | 'rollback' | 'revert' | 'publish' | 'change';

export interface Deploy {
  repo: string;
  commit: string;
  /** ISO 8601 committer time. */
  at: string;
  author: string;
  subject: string;
  kind: DeployKind;
}

export interface RolloutView {
  repo: string;
  file: string;
  model: string;
  version: string;
  from: string;
  waves: string[];
  wave: string;
  status: string;
  since: string;
  /** Set when the file could not be read as a rollout. */
  problem?: string;
}

export interface RepoHistory {
  deploys: Deploy[];
  rollouts: RolloutView[];
}

const MAX_DEPLOYS = 50;
const MAX_ROLLOUTS = 50;
const MAX_ROLLOUT_BYTES = 64 * 1024;

export function classify(subject: string): DeployKind {
  if (/^Revert "/.test(subject)) return 'revert';
  if (/^Roll ?back\b/i.test(subject)) return 'rollback';
  if (/^Promote\b/.test(subject)) return 'promotion';
  if (/^Publish\b/.test(subject)) return /\(not promoted\)/.test(subject) ? 'publish' : 'promotion';
  return 'change';
}

async function git(gitDir: string, args: string[]): Promise<string> {
  const { stdout } = await run('git', ['--git-dir', gitDir, ...args], { maxBuffer: 4 << 20, timeout: 10_000, env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' } });
  return stdout;
}

/** Read one repository's deploy history and rollouts; an empty repo has neither. */
export async function readRepoHistory(repo: string, gitDir: string): Promise<RepoHistory> {
  let log: string;
  try {
    log = await git(gitDir, ['log', `-n${MAX_DEPLOYS}`, '--format=%H%x1f%cI%x1f%an%x1f%s', 'HEAD', '--', 'registry/model_registry.yaml', 'registry/rollouts']);
  } catch {
    return { deploys: [], rollouts: [] };
  }
  const deploys: Deploy[] = [];
  for (const line of log.split('\n')) {
    const [commit, at, author, subject] = line.split('\x1f');
    if (!commit || !at || subject === undefined) continue;
    const t = Date.parse(at);
    deploys.push({ repo, commit, at: Number.isFinite(t) ? new Date(t).toISOString() : at, author: author ?? '', subject, kind: classify(subject) });
  }
  return { deploys, rollouts: await readRollouts(repo, gitDir) };
}

async function readRollouts(repo: string, gitDir: string): Promise<RolloutView[]> {
  let names: string[];
  try {
    names = (await git(gitDir, ['ls-tree', '--name-only', 'HEAD', 'registry/rollouts/'])).split('\n').filter((n) => /\.ya?ml$/.test(n)).slice(0, MAX_ROLLOUTS);
  } catch {
    return [];
  }
  const out: RolloutView[] = [];
  for (const file of names) out.push(await readRollout(repo, gitDir, file));
  return out;
}

async function readRollout(repo: string, gitDir: string, file: string): Promise<RolloutView> {
  const empty: RolloutView = { repo, file, model: file.replace(/^.*\//, '').replace(/\.ya?ml$/, ''), version: '', from: '', waves: [], wave: '', status: '', since: '' };
  try {
    const text = await git(gitDir, ['cat-file', 'blob', `HEAD:${file}`]);
    if (text.length > MAX_ROLLOUT_BYTES) return { ...empty, problem: `larger than ${MAX_ROLLOUT_BYTES} bytes` };
    const doc = parseYaml(text) as Record<string, unknown> | null;
    if (!doc || typeof doc !== 'object') return { ...empty, problem: 'not a YAML mapping' };
    const s = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? String(v).slice(0, 100) : '');
    const state = (doc.state && typeof doc.state === 'object' ? doc.state : {}) as Record<string, unknown>;
    const waves = Array.isArray(doc.waves) ? (doc.waves as Array<Record<string, unknown>>).map((w) => s(w?.name)).filter(Boolean).slice(0, 20) : [];
    return { ...empty, model: s(doc.model) || empty.model, version: s(doc.version), from: s(doc.from), waves, wave: s(state.wave), status: s(state.status), since: s(state.since) };
  } catch (err) {
    return { ...empty, problem: (err as Error).message.split('\n')[0]!.slice(0, 200) };
  }
}

/** Per-repository history, read on first use and again only after a ref of that repo moved. */
export class HistoryCache {
  private readonly cache = new Map<string, Promise<RepoHistory>>();

  constructor(private readonly listRepos: () => Promise<Array<{ repo: string; gitDir: string }>>) {}

  invalidate(repo: string): void {
    this.cache.delete(repo);
  }

  async all(): Promise<RepoHistory> {
    const repos = await this.listRepos();
    const parts = await Promise.all(repos.map(({ repo, gitDir }) => {
      let p = this.cache.get(repo);
      if (!p) {
        p = readRepoHistory(repo, gitDir);
        this.cache.set(repo, p);
      }
      return p;
    }));
    for (const k of this.cache.keys()) if (!repos.some((r) => r.repo === k)) this.cache.delete(k);
    return {
      deploys: parts.flatMap((p) => p.deploys).sort((a, b) => b.at.localeCompare(a.at)).slice(0, MAX_DEPLOYS),
      rollouts: parts.flatMap((p) => p.rollouts),
    };
  }
}
