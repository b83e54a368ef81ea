// Runs dist/cli.cjs (the bundle `npm run build` makes) through V8's code
// cache. Compiling the bundle (2.8 MB then, 1.9 MB now), and the functions a command then calls,
// was a third of a short command's time (a `modelsync reconcile` that applies
// a small delta: about 0.4 s of start-up before the pass, 0.23 s with the
// cache). Node 20 has no code cache for ES modules, hence one CommonJS file
// compiled with vm.Script, whose cached data V8 checks against its own
// version, flags and the source's length, and rejects (we then recompile and
// write it again) when they differ.
//
// One cache per command, written when the process exits after a run that had
// none or had its cache rejected, and that ran the command (not a usage error,
// not its --help): a cache holds the functions that command compiled, so
// `--help` does not stand in for `reconcile`. The file name
// carries the bundle's build id because V8's length check alone would accept
// a cache made from a different bundle of the same size. The cache lives in
// dist/.code-cache (MODELSYNC_CODE_CACHE_DIR elsewhere; MODELSYNC_CODE_CACHE=0
// turns it off); where it cannot be written, commands just compile as before.
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import vm from 'node:vm';

/** The cache's name for this invocation: the command word, or `none` for bare flags. */
function commandKey(argv) {
  const word = argv.find((a) => !a.startsWith('-'));
  return word && /^[a-z][a-z0-9-]{0,31}$/.test(word) ? word : 'none';
}

// src/errors.ts EXIT.usage: commander's verdict on the arguments, before the command ran.
const EXIT_USAGE = 2;

/** `<command> --help` or `--version`: commander answers before the command's own code runs. */
function asksForUsage(argv, key) {
  return key !== 'none' && argv.some((a) => a === '-h' || a === '--help' || a === '-V' || a === '--version');
}

function readOrUndefined(path) {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

export function runBundle(distDir, argv = process.argv.slice(2)) {
  const file = join(distDir, 'cli.cjs');
  const id = readOrUndefined(join(distDir, 'build-id'))?.toString('utf8').trim();
  // Stack traces that point into src/ cost a read and parse of the bundle's source map at start (about
  // 80 ms of CPU here): on request only, and then through Node's own CommonJS loader, the one that
  // registers source maps, so without the cache.
  const maps = process.env.MODELSYNC_SOURCE_MAPS === '1';
  if (maps) process.setSourceMapsEnabled(true);
  if (maps || process.env.MODELSYNC_CODE_CACHE === '0' || !id || !/^[0-9a-f]{16}$/.test(id)) {
    createRequire(import.meta.url)(file);
    return;
  }
  const dir = process.env.MODELSYNC_CODE_CACHE_DIR || join(distDir, '.code-cache');
  const key = commandKey(argv);
  const name = `${key}-${id}-${process.version}-${process.arch}.v8`;
  const cachePath = join(dir, name);
  const cachedData = readOrUndefined(cachePath);
  const script = new vm.Script(Module.wrap(readFileSync(file, 'utf8')), { filename: file, cachedData });
  // undefined: there was no cache; true: V8 refused it (another Node, other flags, a damaged file).
  if (script.cachedDataRejected !== false) {
    process.once('exit', (code) => {
      // A cache holds only what its run compiled, and an accepted one is never written again: a first
      // `reconcile --help` or a mistyped option would leave `reconcile` a cache without the pass
      // (measured: 0.59 MB where a pass leaves 1.65 MB, and every later pass compiling the rest).
      if (code === EXIT_USAGE || asksForUsage(argv, key)) return;
      try {
        const data = script.createCachedData();
        mkdirSync(dir, { recursive: true });
        const tmp = `${cachePath}.${process.pid}.tmp`;
        writeFileSync(tmp, data);
        renameSync(tmp, cachePath);
        // Caches of this command for other builds or Node versions are dead weight.
        const ours = new RegExp(`^${key}-[0-9a-f]{16}-v[0-9.]+-[a-z0-9]+\\.v8$`);
        for (const f of readdirSync(dir)) if (f !== name && ours.test(f)) rmSync(join(dir, f), { force: true });
      } catch {
        // A read-only install or a full disk: the next run compiles again, nothing else changes.
      }
    });
  }
  const mod = new Module(file);
  mod.filename = file;
  script.runInThisContext()(mod.exports, createRequire(file), mod, file, dirname(file));
}
