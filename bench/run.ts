/**
 * `npm run bench`: runs every bench/*.bench.ts in turn (alone, so they do not
 * compete for the machine's cores) and prints their reports side by side.
 * Each module default-exports `(ctx) => Promise<BenchReport>`.
 *
 *   npm run bench                 # all benchmarks
 *   npm run bench -- fetch        # only those whose file name contains "fetch"
 *   MODELSYNC_BENCH_SIZE_MB=256 npm run bench   # smaller objects for a quick look
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface BenchRow {
  metric: string;
  value: number | string;
  unit?: string;
  /** What the number is compared with, and the target, for the reader. */
  note?: string;
}

export interface BenchReport {
  name: string;
  rows: BenchRow[];
}

export interface BenchContext {
  /** A scratch directory for this benchmark, on the same disk as the repo. */
  workDir: string;
  /** Size in MiB of "big" objects (default 1024). */
  sizeMb: number;
  log(line: string): void;
}

const here = dirname(fileURLToPath(import.meta.url));
const filter = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filter.length === 0 || filter.some((x) => f.includes(x)))
  .sort();

const sizeMb = Number(process.env.MODELSYNC_BENCH_SIZE_MB ?? 1024);
const reports: BenchReport[] = [];
for (const f of files) {
  const workDir = join(here, '.work', f.replace(/\.bench\.ts$/, ''));
  mkdirSync(workDir, { recursive: true });
  console.error(`\n=== ${f}`);
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { default: (ctx: BenchContext) => Promise<BenchReport> };
  const report = await mod.default({ workDir, sizeMb, log: (l) => console.error(`  ${l}`) });
  reports.push(report);
}

const lines: string[] = [`# modelsync benchmarks (${new Date().toISOString()}, node ${process.version}, sizes ${sizeMb} MiB)`, ''];
for (const r of reports) {
  lines.push(`## ${r.name}`, '', '| metric | value | note |', '|---|---|---|');
  for (const row of r.rows) lines.push(`| ${row.metric} | ${row.value}${row.unit ? ` ${row.unit}` : ''} | ${row.note ?? ''} |`);
  lines.push('');
}
const text = lines.join('\n');
console.log(text);
mkdirSync(join(here, 'results'), { recursive: true });
writeFileSync(join(here, 'results', 'latest.md'), text);
