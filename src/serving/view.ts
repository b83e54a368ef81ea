/**
 * A serving view on disk: `<dir>/<model>/<N>/` version directories built from
 * the store, the server's version policy (OVMS config.json, Triton
 * config.pbtxt) and the numbering state. Nothing a server reads is ever
 * half-written: a version directory is built as `.<N>.tmp` and renamed, a
 * config is written to a temp file, fsynced and renamed over.
 */
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { join, relative } from 'node:path';
import { ServiceError, errorMessage } from '../errors.ts';
import { fsyncDir, readFileOrNull, writeFileAtomic } from '../util/fsutil.ts';
import {
  STATE_FILE, allocate, emptyViewState, forgetRemoved, markFailed, markServed, modelView, parseViewState, planPrune,
  type ModelView, type ViewState,
} from './numbering.ts';
import { updateOvmsConfig } from './ovms-config.ts';
import { TRITON_CONFIG, defaultTritonConfig, setTritonVersionPolicy } from './triton-config.ts';

export type ServingKind = 'ovms' | 'triton';

export interface ViewLocation {
  kind: ServingKind;
  dir: string;
  /** OVMS: the config.json kept (default `<dir>/config.json`). */
  configFile?: string;
  /** `dir` as the server sees it, for base_path (default `dir`). */
  runtimeDir?: string;
}

export interface StageResult {
  n: number;
  /** Files hard-linked into the store, and files copied (then verified) because the view is on another filesystem. */
  linked: number;
  copied: number;
}

const NUMERIC = /^[1-9][0-9]{0,8}$/;

export class ServingRepo {
  readonly stateFile: string;
  readonly configFile: string | undefined;
  private readonly runtimeDir: string;

  constructor(readonly loc: ViewLocation) {
    this.stateFile = join(loc.dir, STATE_FILE);
    this.configFile = loc.kind === 'ovms' ? (loc.configFile ?? join(loc.dir, 'config.json')) : undefined;
    this.runtimeDir = (loc.runtimeDir ?? loc.dir).replace(/\/+$/, '') || '/';
  }

  modelDir(model: string): string {
    return join(this.loc.dir, model);
  }

  versionDir(model: string, n: number): string {
    return join(this.loc.dir, model, String(n));
  }

  async readState(): Promise<ViewState> {
    const text = await readFileOrNull(this.stateFile);
    return text === null ? emptyViewState() : parseViewState(text.toString('utf8'), this.stateFile);
  }

  async writeState(state: ViewState): Promise<void> {
    await writeFileAtomic(this.stateFile, `${JSON.stringify(state, null, 2)}\n`);
  }

  /** The model's view as recorded, numbering above anything on disk. */
  async view(model: string, state?: ViewState): Promise<ModelView> {
    return modelView(state ?? (await this.readState()), model, await this.numbersOnDisk(model));
  }

  private async save(model: string, v: ModelView): Promise<void> {
    const state = await this.readState();
    state.models[model] = v;
    await this.writeState(state);
  }

  /** The numeric version directories of a model, ascending. */
  async numbersOnDisk(model: string): Promise<number[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.modelDir(model));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names.filter((n) => NUMERIC.test(n)).map(Number).sort((a, b) => a - b);
  }

  /**
   * Build `<dir>/<model>/<N>/` from a store version directory, with a new N.
   * The N is recorded before anything is built, so a crash never hands it
   * out twice; a build that fails leaves no directory and its N marked failed.
   */
  async stage(model: string, version: string, sourceDir: string, at: string): Promise<StageResult> {
    const { view, n } = allocate(await this.view(model), version, at);
    await this.save(model, view);
    const modelDir = this.modelDir(model);
    await fsp.mkdir(modelDir, { recursive: true });
    // Left by a crash mid-build: never renamed, so no server saw them.
    for (const name of await fsp.readdir(modelDir)) if (/^\.[0-9]+\.tmp$/.test(name)) await fsp.rm(join(modelDir, name), { recursive: true, force: true });
    const tmp = join(modelDir, `.${n}.tmp`);
    const counts = { linked: 0, copied: 0 };
    try {
      await fsp.mkdir(tmp);
      await copyTree(sourceDir, tmp, counts);
      await fsyncDir(tmp);
      await fsp.rename(tmp, this.versionDir(model, n));
      await fsyncDir(modelDir);
    } catch (err) {
      await fsp.rm(tmp, { recursive: true, force: true }).catch(() => {});
      await this.save(model, markFailed(await this.view(model), n)).catch(() => {});
      throw new ServiceError(`serving ${this.loc.dir}: cannot build ${model}/${n} from ${sourceDir}: ${errorMessage(err)}`, { dir: this.loc.dir, model }, err);
    }
    return { n, ...counts };
  }

  /**
   * Point the server's version policy at these Ns (one config write for all
   * of them: OVMS has one file) and record them as served.
   */
  async point(targets: ReadonlyArray<{ model: string; n: number }>): Promise<void> {
    if (targets.length === 0) return;
    if (this.loc.kind === 'ovms') {
      const file = this.configFile!;
      const text = await readFileOrNull(file);
      const next = updateOvmsConfig(text === null ? null : text.toString('utf8'), file, targets.map((t) => ({ name: t.model, basePath: `${this.runtimeDir}/${t.model}`, version: t.n })));
      await writeFileAtomic(file, next);
    } else {
      for (const t of targets) {
        const file = join(this.modelDir(t.model), TRITON_CONFIG);
        // A version that ships its own config.pbtxt brings its settings; else the operator's file; else a minimal one.
        const shipped = await readFileOrNull(join(this.versionDir(t.model, t.n), TRITON_CONFIG));
        const existing = shipped ?? (await readFileOrNull(file));
        const base = existing !== null ? existing.toString('utf8') : defaultTritonConfig(t.model, await fsp.readdir(this.versionDir(t.model, t.n)));
        const where = shipped ? join(this.versionDir(t.model, t.n), TRITON_CONFIG) : file;
        await writeFileAtomic(file, setTritonVersionPolicy(base, t.n, where));
      }
    }
    const state = await this.readState();
    for (const t of targets) state.models[t.model] = markServed(modelView(state, t.model, await this.numbersOnDisk(t.model)), t.n);
    await this.writeState(state);
  }

  async markFailed(model: string, n: number): Promise<void> {
    await this.save(model, markFailed(await this.view(model), n));
  }

  /** Remove version directories past retention; returns the Ns removed. */
  async prune(model: string, keep: number): Promise<number[]> {
    const onDisk = await this.numbersOnDisk(model);
    const v = await this.view(model);
    const { remove } = planPrune(v, onDisk, keep);
    for (const n of remove) await fsp.rm(this.versionDir(model, n), { recursive: true, force: true });
    if (remove.length) await fsyncDir(this.modelDir(model));
    await this.save(model, forgetRemoved(v, await this.numbersOnDisk(model)));
    return remove;
  }
}

/** Hard-link every regular file of `src` under `dst`; across filesystems, copy and verify the copy. */
async function copyTree(src: string, dst: string, counts: { linked: number; copied: number }, root = src): Promise<void> {
  for (const e of await fsp.readdir(src, { withFileTypes: true })) {
    const from = join(src, e.name);
    const to = join(dst, e.name);
    if (e.isDirectory()) {
      await fsp.mkdir(to);
      await copyTree(from, to, counts, root);
      await fsyncDir(to);
    } else if (e.isFile()) {
      try {
        await fsp.link(from, to);
        counts.linked++;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw err;
        await verifiedCopy(from, to, relative(root, from));
        counts.copied++;
      }
    }
    // Symlinks and other kinds are not store content: never followed into the view.
  }
}

async function verifiedCopy(from: string, to: string, name: string): Promise<void> {
  const want = createHash('sha256');
  const source = createReadStream(from);
  source.on('data', (d) => want.update(d));
  await pipeline(source, createWriteStream(to, { flags: 'wx', mode: 0o444 }));
  const fh = await fsp.open(to, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  const got = createHash('sha256');
  await pipeline(createReadStream(to), got);
  const a = want.digest('hex');
  const b = got.digest('hex');
  if (a !== b) throw new ServiceError(`the copy of ${name} does not match the store (sha256 ${b}, want ${a})`, { file: name });
}
