/**
 * `modelsync plan` on a 200-site registry: 10 models × 3 versions, 4 groups,
 * every site rendering 2 templates, every 7th site with an override. The
 * change under review promotes one model and edits one template, so most
 * sites are affected and every site's templates are rendered on both sides.
 * Reports the pure planner (planChange: resolution, delta estimates, both
 * renders, diffs), reading and validating both commits in-process, and the
 * whole CLI process.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { planChange } from '../src/fleet/preview.ts';
import { readSide } from '../src/commands/preview-read.ts';
import { openSource } from '../src/registry/open.ts';
import type { BenchContext, BenchReport } from './run.ts';
import { CLI, benchGitEnv, manifestYaml, measure, run } from './common.ts';
import { createHash } from 'node:crypto';

const SITES = 200;
const MODELS = 10;
const VERSIONS = 3;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const oid = (s: string): string => createHash('sha256').update(s).digest('hex');

function write(root: string, rel: string, text: string): void {
  const p = join(root, rel);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, text);
}

export default async function planBench(ctx: BenchContext): Promise<BenchReport> {
  const work = join(ctx.workDir, 'run');
  rmSync(work, { recursive: true, force: true });
  const repo = join(work, 'reg');
  mkdirSync(repo, { recursive: true });
  const env = benchGitEnv(join(work, 'home'));
  run('git', ['init', '-q', '-b', 'main'], { cwd: repo, env });
  const models = Array.from({ length: MODELS }, (_, m) => `model${m}`);
  for (const model of models) {
    for (let v = 1; v <= VERSIONS; v++) {
      const files = [{ name: 'weights.bin', sha256: oid(`${model}-${v}`), size: 100 << 20 }, { name: 'labels.txt', sha256: oid(`${model}-labels`), size: 2048 }];
      for (const f of files) write(repo, `registry/${model}/${v}/${f.name}`, `version https://git-lfs.github.com/spec/v1\noid sha256:${f.sha256}\nsize ${f.size}\n`);
      write(repo, `registry/${model}/${v}/manifest.yaml`, manifestYaml(model, String(v), files));
    }
  }
  const registry = (current: (m: string) => number) => `models:\n${models.map((m) => `  ${m}: {current_version: "${current(m)}"}`).join('\n')}\n`;
  write(repo, 'registry/model_registry.yaml', registry(() => 2));
  const task = (i: number) => `# task ${i} for {{ site.name }} in {{ site.labels.region }}\n{% for name, m in models | dictsort %}{{ name }}: {{ m.dir }} ({{ m.version }})\n{% for f in m.files %}  - {{ f.path }} {{ f.size }}\n{% endfor %}{% endfor %}threshold: 0.${i}\n`;
  write(repo, 'templates/a.yaml.j2', task(1));
  write(repo, 'templates/b.yaml.j2', task(2));
  for (let g = 0; g < 4; g++) {
    write(repo, `sites/groups/g${g}.yaml`, `models: [${models.filter((_, i) => i % 4 === g || i < 3).join(', ')}]\ntemplates:\n  - {src: templates/a.yaml.j2, dest: a.yaml}\n  - {src: templates/b.yaml.j2, dest: b.yaml}\n`);
  }
  for (let s = 0; s < SITES; s++) {
    const override = s % 7 === 0 ? `overrides: {model0: "1"}\n` : '';
    write(repo, `sites/site${s}.yaml`, `extends: [groups/g${s % 4}]\nlabels: {region: r${s % 10}}\n${override}`);
  }
  run('git', ['add', '-A'], { cwd: repo, env });
  run('git', ['commit', '-q', '-m', 'fleet'], { cwd: repo, env });
  run('git', ['checkout', '-q', '-b', 'change'], { cwd: repo, env });
  write(repo, 'registry/model_registry.yaml', registry((m) => (m === 'model0' ? 3 : 2)));
  write(repo, 'templates/b.yaml.j2', task(3));
  run('git', ['commit', '-q', '-am', 'model0 3, task b threshold'], { cwd: repo, env });

  const loadStart = performance.now();
  const baseSrc = await openSource(repo, { rev: 'main' });
  const base = await readSide(baseSrc, 'main', { checkContent: false });
  const head = await readSide(await openSource(repo, { rev: 'change' }), 'change', { checkContent: (m, v) => !base.registry.models.get(m)?.versions.has(v) });
  const loadMs = performance.now() - loadStart;
  if (head.problems.length) throw new Error(`bench registry is invalid: ${JSON.stringify(head.problems[0])}`);

  const times: number[] = [];
  let affected = 0;
  for (let i = 0; i < 15; i++) {
    const t = performance.now();
    const plan = planChange({ base, head, problems: head.problems, chunks: () => undefined });
    times.push(performance.now() - t);
    affected = plan.sites.length;
  }
  ctx.log(`affected sites: ${affected} of ${SITES}`);

  const cli: number[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await measure(process.execPath, [CLI, 'plan', '--repo', repo, '--base', 'main', '--head', 'change', '--format', 'markdown'], { cwd: repo, env });
    if (r.status !== 0) throw new Error(`plan exited ${r.status}: ${r.stderr}`);
    cli.push(r.ms);
  }
  if (!process.env.MODELSYNC_BENCH_KEEP) rmSync(work, { recursive: true, force: true });
  return {
    name: `plan: ${SITES} sites, ${MODELS} models × ${VERSIONS} versions, 2 templates per site (${affected} sites affected)`,
    rows: [
      { metric: 'planChange (pure: resolve, estimate, render both sides, diff)', value: median(times).toFixed(1), unit: 'ms', note: 'median of 15; goal: well under 1 s' },
      { metric: 'read + validate both commits (in-process)', value: loadMs.toFixed(0), unit: 'ms', note: 'isomorphic-git reads of 2 commits' },
      { metric: '`modelsync plan --format markdown` (whole process)', value: median(cli).toFixed(0), unit: 'ms', note: 'median of 5, includes Node start-up' },
    ],
  };
}
