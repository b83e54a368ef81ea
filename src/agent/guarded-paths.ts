/**
 * The paths no registry template may write on this site: the agent's own
 * files (who it is, what it trusts) and whatever its service commands run.
 * Whoever can merge to the registry decides versions, never what a site
 * executes, so a `dest` that lands on a script a `restart` or `health`
 * command names (or below a directory one names) is refused on the site.
 *
 * Which argv entries are paths cannot be known for sure (`sh -c "..."`, a
 * program found on PATH), so the rule errs towards guarding: an entry with a
 * `/` is a path, guarded with everything below it; every other entry and
 * every word inside an entry is guarded as a file relative to the agent's
 * working directory; a bare program name also as a file in each PATH
 * directory. A false positive costs a refused template; a miss would cost
 * the site. What a script itself reads or runs is beyond what can be known:
 * keep service scripts out of config_dir (docs/site.md).
 */
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import type { AgentConfig } from './config.ts';

export interface GuardedPath {
  path: string;
  /** Everything below path is guarded too (a directory a command names). */
  subtree: boolean;
  /** What the path is to the agent, for the refusal message. */
  reason: string;
}

export interface GuardOptions {
  /** Where service commands run (relative argv entries resolve here). */
  cwd?: string;
  /** The PATH service commands see (bare program names are looked up here). */
  pathEnv?: string;
}

export function guardedPaths(config: AgentConfig, opts: GuardOptions = {}): GuardedPath[] {
  const cwd = opts.cwd ?? process.cwd();
  const out: GuardedPath[] = [];
  const own: Array<[string | undefined, string]> = [
    [config.configPath, "the agent's config"],
    [config.token_file, "the agent's token file"],
    [config.webhook_secret_file, "the agent's webhook secret"],
    [config.store, "the agent's store"],
  ];
  for (const [p, reason] of own) if (p) out.push({ path: resolve(cwd, p), subtree: true, reason: `${reason}, which belongs to the agent` });
  // A serving view is what a model server loads: a template writing into it (or its config.json) would bypass the health gate.
  (config.serving ?? []).forEach((v, i) => {
    out.push({ path: resolve(cwd, v.dir), subtree: true, reason: `serving[${i}].dir, a model server repository the agent keeps` });
    if (v.config) out.push({ path: resolve(cwd, v.config), subtree: true, reason: `serving[${i}].config, which the agent keeps` });
  });
  config.services.forEach((s, j) => {
    // The smoke request is the site's decision, not the registry's.
    if (s.health?.infer) out.push({ path: resolve(cwd, s.health.infer.request), subtree: false, reason: `the inference request of services[${j}].health.infer` });
  });
  config.services.forEach((s, i) => {
    const argvs: Array<[readonly string[] | undefined, string]> = [
      [s.restart, `services[${i}].restart`],
      [s.health?.command, `services[${i}].health.command`],
    ];
    for (const [argv, field] of argvs) {
      if (!argv) continue;
      const reason = `which a service command runs (${field} of ${JSON.stringify(s.name)})`;
      for (const p of argvPaths(argv, cwd, opts.pathEnv ?? process.env.PATH ?? '')) out.push({ ...p, reason });
    }
  });
  return out;
}

/** Every path an argv may execute or read, absolute; an entry with a `/` guards its subtree. */
export function argvPaths(argv: readonly string[], cwd: string, pathEnv: string): Array<{ path: string; subtree: boolean }> {
  const seen = new Map<string, boolean>();
  const add = (p: string, subtree: boolean): void => {
    seen.set(p, subtree || (seen.get(p) ?? false));
  };
  argv.forEach((entry, i) => {
    add(resolve(cwd, entry), entry.includes('/'));
    // `--script=/x/run.sh`, `sh -c "cd /x && ./run.sh"`: each word may name a file too.
    // A relative word is also taken against each absolute one of the same entry (`cd /x && ./run.sh`).
    const words = entry.split(/[\s=:;&|<>()'"`,]+/).filter((w) => w.length > 0 && !/^-+$/.test(w));
    const bases = [cwd, ...words.filter((w) => isAbsolute(w))];
    for (const w of words) for (const b of bases) add(resolve(b, w), false);
    if (i === 0 && !entry.includes('/') && !isAbsolute(entry)) {
      for (const dir of pathEnv.split(delimiter)) if (dir) add(resolve(cwd, join(dir, entry)), false);
    }
  });
  return [...seen].map(([path, subtree]) => ({ path, subtree }));
}
