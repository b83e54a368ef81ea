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
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist');
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

rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: ['src/cli.ts'],
  outdir,
  bundle: true,
  splitting: true, // keeps the CLI's lazy per-command imports lazy
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external,
  // CommonJS libraries inside an ESM bundle still call require() for Node's built-ins.
  banner: { js: "import { createRequire as __modelsyncCreateRequire } from 'node:module'; const require = __modelsyncCreateRequire(import.meta.url);" },
  plugins: [zodEnglishOnly],
  sourcemap: 'linked',
  logLevel: 'warning',
});
