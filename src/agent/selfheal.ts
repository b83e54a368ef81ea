/**
 * Self-heal: a model file under `<store>/models/` that someone deleted or
 * changed on the site is noticed (a watch on models/, plus a periodic,
 * rate-limited re-hash of the active files) and restored.
 *
 * Files in a version directory are hard links to verified objects, so the
 * check is simple: a healthy file hashes to the name of an object *and is
 * that object* (same inode). A damaged file is handled in two ways:
 * - replaced or deleted (a new inode, or none): the objects are intact, and
 *   the next pass relinks the file from its verified object;
 * - written in place (same inode as its object): the object itself is
 *   corrupt, so it is moved out of objects/ and the next pass fetches it
 *   again, verifies it and relinks.
 * Either way the healer only asks for a pass; the pass does the repair under
 * the store lock, with the same checks as any other pass.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'chokidar';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { CURRENT, PREVIOUS, StoreLayout } from '../store/layout.ts';
import { readState } from '../store/state.ts';
import { SHA256_RE } from '../util/hash.ts';
import { sleep, type Clock, type TimerHandle } from './clock.ts';

export type DamageKind = 'deleted' | 'modified' | 'replaced';

export interface Damage {
  /** Clock time it was found. */
  at: number;
  model: string;
  version: string;
  /** Path inside the version directory. */
  file: string;
  kind: DamageKind;
  /** How it was found. */
  by: 'watch' | 'verify';
  /** Objects moved out of the store because their bytes no longer match their name. */
  quarantined: string[];
  /** Set once a pass restored the file (or failed to). */
  healed?: boolean;
  healedAt?: number;
}

export interface SelfHealOptions {
  store: string;
  clock: Clock;
  logger: Logger;
  /** Periodic verification of active files; 0 turns it off. */
  verifyIntervalMs: number;
  /** Read rate of the periodic verification, so it never competes with serving (default 32 MiB/s). */
  verifyBytesPerSecond?: number;
  /** Quiet period after the last file event before checking (default 300 ms). */
  debounceMs?: number;
  /** Watch models/ (default true). */
  watch?: boolean;
  /** Whether a pass is running: periodic verification waits for it. */
  busy(): boolean;
  /** Something needs repairing: run a pass. Resolves when that pass finished. */
  requestPass(detail: string): Promise<unknown>;
  onDamage?(d: Damage): void;
}

const MAX_REPORTED = 20;

export class SelfHealer {
  private watcher: FSWatcher | undefined;
  private debounce: TimerHandle | undefined;
  private verifyTimer: TimerHandle | undefined;
  private pending = new Map<string, 'unlink' | 'change' | 'unlinkDir' | 'add'>();
  private readonly layout: StoreLayout;
  private stopped = true;
  private verifying: Promise<unknown> | undefined;
  private readonly abort = new AbortController();
  /** Recent damage, newest last, for /status and the hub. */
  readonly damage: Damage[] = [];
  healed = 0;
  lastVerifyAt: number | null = null;

  constructor(private readonly opts: SelfHealOptions) {
    this.layout = new StoreLayout(opts.store);
  }

  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    if (this.opts.watch !== false) {
      await fsp.mkdir(this.layout.modelsDir, { recursive: true });
      const w = watch(this.layout.modelsDir, { ignoreInitial: true, followSymlinks: false, persistent: true });
      this.watcher = w;
      // 'add' is not damage (a new version arriving); a file replaced in place shows as change or unlink.
      w.on('unlink', (p) => this.note(p, 'unlink'));
      w.on('change', (p) => this.note(p, 'change'));
      w.on('unlinkDir', (p) => this.note(p, 'unlinkDir'));
      // A `current` link replaced by hand (ln -sfn) shows as add or change of the link itself.
      w.on('add', (p) => {
        if (p.endsWith(`${sep}${CURRENT}`)) this.note(p, 'add');
      });
      w.on('error', (err) => this.opts.logger.warn({ err: errorMessage(err) }, 'self-heal watch error'));
      await new Promise<void>((resolve) => w.once('ready', () => resolve()));
    }
    this.scheduleVerify();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.opts.clock.clearTimeout(this.debounce);
    this.opts.clock.clearTimeout(this.verifyTimer);
    await this.watcher?.close();
    await this.verifying?.catch(() => {});
  }

  private note(path: string, kind: 'unlink' | 'change' | 'unlinkDir' | 'add'): void {
    if (this.stopped) return;
    this.pending.set(path, kind);
    this.opts.clock.clearTimeout(this.debounce);
    this.debounce = this.opts.clock.setTimeout(() => void this.processPending(), this.opts.debounceMs ?? 300);
  }

  private async processPending(): Promise<void> {
    const batch = [...this.pending];
    this.pending.clear();
    const found: Damage[] = [];
    let linkGone = false;
    const relinked: string[] = [];
    for (const [path, kind] of batch) {
      const parts = relative(this.layout.modelsDir, path).split(sep);
      if (parts.length < 2 || parts[0] === '..') continue;
      const [model, version, ...rest] = parts as [string, string, ...string[]];
      if (version === CURRENT || version === PREVIOUS) {
        if (kind === 'unlink' && version === CURRENT && !(await exists(path))) linkGone = true;
        else if (version === CURRENT && rest.length === 0) {
          const moved = await this.relinkedByHand(model);
          if (moved) relinked.push(moved);
        }
        continue;
      }
      if (kind === 'add') continue;
      const active = await this.activeVersions(model);
      if (!active.has(version)) continue;
      if (kind === 'unlinkDir') {
        if (rest.length === 0 || !(await exists(path))) found.push(this.record({ model, version, file: rest.join('/') || '.', kind: 'deleted', by: 'watch', quarantined: [] }));
        continue;
      }
      try {
        const d = await this.checkFile(model, version, rest.join('/'), 'watch', Infinity);
        if (d) found.push(d);
      } catch (err) {
        this.opts.logger.warn({ path, err: errorMessage(err) }, 'self-heal check failed');
      }
    }
    if (linkGone) this.opts.logger.warn('a current link under models/ was removed on the site; reconciling');
    for (const r of relinked) this.opts.logger.warn(`a current link was replaced on the site (${r}); reconciling`);
    const extra = [...(linkGone ? ['current link removed'] : []), ...relinked.map((r) => `current link replaced: ${r}`)];
    if (found.length > 0 || extra.length > 0) await this.heal(found, extra.length > 0 ? extra.join(', ') : undefined);
  }

  /**
   * A `current` link that names another version than the store's last pass
   * recorded, while no pass runs: someone switched it by hand. (A pass's own
   * switch happens while it runs, and it records the new version before it
   * ends, so it never counts.) Returns "model: recorded → now", or undefined.
   */
  private async relinkedByHand(model: string): Promise<string | undefined> {
    if (this.opts.busy()) return undefined;
    const now = await fsp.readlink(join(this.layout.modelsDir, model, CURRENT)).catch(() => undefined);
    const recorded = await readState(this.layout).then(({ state }) => state.models[model]?.active, () => undefined);
    if (now === undefined || now === recorded) return undefined;
    return `${model}: ${recorded ?? '-'} → ${now}`;
  }

  /** Versions whose damage matters now: what current and previous name. */
  private async activeVersions(model: string): Promise<Set<string>> {
    const out = new Set<string>();
    for (const which of [CURRENT, PREVIOUS]) {
      const t = await fsp.readlink(join(this.layout.modelsDir, model, which)).catch(() => undefined);
      if (t && !t.includes('/')) out.add(t);
    }
    return out;
  }

  /**
   * Check one file of a version: null when it is a verified object, else the
   * damage, recorded (after quarantining a corrupt object).
   */
  async checkFile(model: string, version: string, file: string, by: Damage['by'], bytesPerSecond: number): Promise<Damage | null> {
    const found = await this.inspect(model, version, file, bytesPerSecond, true);
    return found ? this.record({ model, version, file: found.file, kind: found.kind, by, quarantined: found.quarantined }) : null;
  }

  private async inspect(
    model: string, version: string, file: string, bytesPerSecond: number, quarantine: boolean,
  ): Promise<{ file: string; kind: DamageKind; quarantined: string[] } | null> {
    const path = join(this.layout.versionDir(model, version), ...file.split('/'));
    const st = await fsp.lstat(path).catch(() => null);
    if (!st) {
      // The whole version directory gone is reported as such: the pass reinstalls it.
      if (!(await exists(this.layout.versionDir(model, version)))) return { file: '.', kind: 'deleted', quarantined: [] };
      return { file, kind: 'deleted', quarantined: [] };
    }
    if (!st.isFile()) return { file, kind: 'replaced', quarantined: [] };
    const oid = await hashThrottled(path, bytesPerSecond, this.opts.clock, this.abort.signal);
    const obj = await fsp.stat(this.layout.objectPath(oid)).catch(() => null);
    if (obj && obj.ino === st.ino && obj.dev === st.dev) return null;
    if (st.nlink <= 1) return { file, kind: 'replaced', quarantined: [] };
    // Written in place: the object sharing this inode no longer holds what its name says.
    const corrupt = quarantine ? await this.objectsWithInode(st.ino, st.dev) : [];
    for (const bad of corrupt) await this.quarantine(bad);
    return { file, kind: 'modified', quarantined: corrupt };
  }

  private async objectsWithInode(ino: number, dev: number): Promise<string[]> {
    const out: string[] = [];
    const root = this.layout.objectsDir;
    for (const a of await fsp.readdir(root).catch(() => [] as string[])) {
      for (const b of await fsp.readdir(join(root, a)).catch(() => [] as string[])) {
        for (const oid of await fsp.readdir(join(root, a, b)).catch(() => [] as string[])) {
          if (!SHA256_RE.test(oid)) continue;
          const s = await fsp.stat(join(root, a, b, oid)).catch(() => null);
          if (s && s.ino === ino && s.dev === dev) out.push(oid);
        }
      }
    }
    return out;
  }

  private async quarantine(oid: string): Promise<void> {
    const dir = join(this.layout.tmpDir, 'quarantine');
    await fsp.mkdir(dir, { recursive: true });
    const dest = join(dir, `${oid}.${this.opts.clock.now()}`);
    await fsp.rename(this.layout.objectPath(oid), dest);
    // Kept only until the pass fetched a good copy; the evidence is in the log.
    await fsp.rm(dest, { force: true });
    this.opts.logger.warn({ oid }, 'object no longer matches its checksum; removed so it is fetched again');
  }

  private record(d: Omit<Damage, 'at'>): Damage {
    const full: Damage = { at: this.opts.clock.now(), ...d };
    this.damage.push(full);
    if (this.damage.length > MAX_REPORTED) this.damage.splice(0, this.damage.length - MAX_REPORTED);
    this.opts.logger.warn({ model: d.model, version: d.version, file: d.file, kind: d.kind, by: d.by }, `model file ${d.kind} on the site; restoring`);
    this.opts.onDamage?.(full);
    return full;
  }

  /** Ask for a pass, then check that each damaged file of a current version is whole again. */
  private async heal(found: Damage[], extra?: string): Promise<void> {
    const what = found.map((d) => `${d.model}/${d.version}/${d.file} ${d.kind}`);
    if (extra) what.push(extra);
    try {
      await this.opts.requestPass(what.join(', '));
    } catch (err) {
      this.opts.logger.warn({ err: errorMessage(err) }, 'self-heal pass did not run');
    }
    for (const d of found) {
      const current = await fsp.readlink(join(this.layout.modelsDir, d.model, CURRENT)).catch(() => undefined);
      // Only the current version is rebuilt by a pass; a damaged previous is rebuilt when it is activated again.
      if (current !== d.version) continue;
      const still = d.file === '.'
        ? !(await exists(this.layout.versionDir(d.model, d.version)))
        : await this.inspect(d.model, d.version, d.file, Infinity, false).then((x) => x !== null, () => true);
      d.healed = !still;
      d.healedAt = this.opts.clock.now();
      if (d.healed) {
        this.healed++;
        this.opts.logger.info({ model: d.model, version: d.version, file: d.file }, 'model file restored');
      } else {
        this.opts.logger.error({ model: d.model, version: d.version, file: d.file }, 'model file could not be restored yet; the next pass retries');
      }
    }
  }

  private scheduleVerify(): void {
    if (this.stopped || this.opts.verifyIntervalMs <= 0) return;
    this.verifyTimer = this.opts.clock.setTimeout(() => {
      this.verifying = this.verifyAll().finally(() => {
        this.verifying = undefined;
        this.scheduleVerify();
      });
    }, this.opts.verifyIntervalMs);
  }

  /** One round: re-hash every file of every current and previous version, at the verification rate. */
  async verifyAll(): Promise<Damage[]> {
    const found: Damage[] = [];
    const rate = this.opts.verifyBytesPerSecond ?? 32 << 20;
    for (const model of await fsp.readdir(this.layout.modelsDir).catch(() => [] as string[])) {
      for (const version of await this.activeVersions(model)) {
        for (const file of await listFiles(this.layout.versionDir(model, version))) {
          if (this.stopped) return found;
          // Low priority: a pass always goes first.
          while (this.opts.busy() && !this.stopped) await sleep(this.opts.clock, 200, this.abort.signal).catch(() => {});
          try {
            const d = await this.checkFile(model, version, file, 'verify', rate);
            if (d) found.push(d);
          } catch (err) {
            if (this.stopped) return found;
            this.opts.logger.warn({ model, version, file, err: errorMessage(err) }, 'verification of a model file failed');
          }
        }
      }
    }
    this.lastVerifyAt = this.opts.clock.now();
    if (found.length > 0) await this.heal(found);
    return found;
  }
}

async function exists(path: string): Promise<boolean> {
  return fsp.lstat(path).then(() => true, () => false);
}

/** Regular files below dir, as posix paths relative to it. */
async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const ents = await fsp.readdir(join(dir, rel), { withFileTypes: true }).catch(() => []);
    for (const e of ents) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else out.push(r);
    }
  };
  await walk('');
  return out.sort();
}

/** sha256 of a file, read no faster than bytesPerSecond (Infinity: full speed). */
async function hashThrottled(path: string, bytesPerSecond: number, clock: Clock, signal: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  const started = clock.now();
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20, signal })) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
    if (Number.isFinite(bytesPerSecond)) {
      const ahead = (bytes / bytesPerSecond) * 1000 - (clock.now() - started);
      if (ahead > 5) await sleep(clock, ahead, signal);
    }
  }
  return hash.digest('hex');
}
