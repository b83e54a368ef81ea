#!/usr/bin/env node
// Bundles src/ and the libraries it uses into dist/, so the CLI and the
// long-running agent start without a TypeScript loader and without Node
// resolving, reading and compiling hundreds of small files from
// node_modules. `npm ci` runs this as the `prepare` step; bin/modelsync.js
// falls back to tsx whenever dist/ is missing or older than src/, so a stale
// build never runs.
//
// Measured on the 2-core development machine (issue 16): a `modelsync
// reconcile` with nothing to do took 0.98–1.14 s with node_modules external,
// 0.68–0.82 s with them bundled, less again with zod's locales left out.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// `--outdir <dir>`: build elsewhere (the code-cache test does, to leave dist/ alone).
const at = process.argv.indexOf('--outdir');
const outdir = at > 0 ? process.argv[at + 1] : join(root, 'dist');
const require = createRequire(import.meta.url);

// Loaded lazily by the commands that need them (S3 storage, OpenPGP trust) or
// never at run time (tsx, the fallback loader; esbuild; test-only packages):
// bundling them would only make dist/ bigger.
const external = ['@aws-sdk/*', 'openpgp', 'tsx', 'tsx/*', 'esbuild', 'onnxruntime-node', 'playwright-core', 's3rver', 'vitest'];

// zod re-exports every locale (about 360 KB of the bundle, nearly half of zod)
// as `z.locales`; modelsync reports its own messages and only ever uses the
// English default, which zod imports directly. The namespace gets English only.
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    const en = require.resolve('zod/v4/locales/en.js');
    b.onResolve({ filter: /\/locales\/index\.js$/ }, (args) => (args.importer.includes(`${join('node_modules', 'zod')}`) ? { path: 'zod-locales-en', namespace: 'zod-en' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'zod-en' }, () => ({ contents: `export { default as en } from ${JSON.stringify(en)};`, loader: 'js', resolveDir: dirname(en) }));
  },
};

// A source with one character outside ASCII makes Node read the whole bundle
// as a two-byte string (twice the memory, a slower read and scan: the bundle
// as it was took 16.5 ms to read, 5 ms once ASCII). esbuild escapes strings
// and drops comments, but leaves regular expressions as written; isomorphic-git
// has one with a literal U+FFFF. Escaped in the loaded source, so the source
// map still matches; our own sources write such characters as escapes.
const asciiRegexps = {
  name: 'ascii-regexps',
  setup(b) {
    b.onLoad({ filter: /[\\/]isomorphic-git[\\/]index\.cjs$/ }, (args) => ({
      contents: readFileSync(args.path, 'utf8').replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
      loader: 'js',
    }));
  },
};

// dist/ is ours to empty (old bundles, their code caches); another --outdir only gets the files written.
if (at < 0) rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: ['src/cli.ts'],
  outfile: join(outdir, 'cli.cjs'),
  bundle: true,
  // One CommonJS file rather than ESM chunks: Node 20 has no code cache for
  // ES modules, and compiling the bundle was a third of a short command's
  // time (bin/run-bundle.js keeps V8's compiled code per command). The lazy
  // per-command imports stay lazy: esbuild runs each command's modules only
  // when its import() runs.
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external,
  // import() of a package left external becomes require(): code V8 restores from a cache has lost
  // the callback vm.Script needs for import(), and every external package here ships CommonJS.
  supported: { 'dynamic-import': false },
  define: { 'import.meta.url': '__modelsyncBundleUrl' },
  banner: { js: "const __modelsyncBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [zodEnglishOnly, asciiRegexps],
  sourcemap: 'linked',
  // Whitespace and comments only: names stay, so stack traces read without the map. 2.8 -> 1.9 MB;
  // a delta reconcile 1-2 ms faster than the ASCII bundle alone (median of 12, interleaved).
  minifyWhitespace: true,
  logLevel: 'warning',
});
// Names the build in the code cache's file names: V8 checks a cache against
// its source's length only, so a cache must never outlive the bundle it was made from.
const bundle = readFileSync(join(outdir, 'cli.cjs'));
const wide = bundle.findIndex((byte) => byte > 0x7f);
if (wide >= 0) throw new Error(`dist/cli.cjs is not ASCII at byte ${wide}: ${JSON.stringify(bundle.subarray(Math.max(0, wide - 60), wide + 20).toString('utf8'))}; escape it in its source (see asciiRegexps)`);
const id = createHash('sha256').update(bundle).digest('hex').slice(0, 16);
writeFileSync(join(outdir, 'build-id'), `${id}\n`);
