#!/usr/bin/env node
// Runs the bundled build in dist/ (made by `npm ci` / `npm run build`) when it
// is at least as new as every source file; otherwise runs src/ through tsx,
// so what executes is never older than what is in src/.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const built = join(root, 'dist', 'cli.cjs');

function newestSource(dir) {
  let newest = 0;
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (ent.name.endsWith('.ts') && !ent.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function builtIsFresh() {
  if (process.env.MODELSYNC_FROM_SOURCE === '1') return false;
  try {
    return statSync(built).mtimeMs >= newestSource(join(root, 'src'));
  } catch {
    return false;
  }
}

if (builtIsFresh()) {
  const { runBundle } = await import('./run-bundle.js');
  runBundle(join(root, 'dist'));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli.ts');
}
