/**
 * Where things live in a site store (DESIGN.md, "The store on a site"). Every
 * path the store touches is built here, from names the registry schemas have
 * already checked (model and version names cannot contain "/" or be "." / "..").
 */
import { join } from 'node:path';
import { NAME_RE, VERSION_RE, RESERVED_VERSION_NAMES } from '../registry/schema.ts';
import { safeJoin } from '../util/safe-path.ts';
import { SHA256_RE } from '../util/hash.ts';
import { StoreError } from '../errors.ts';

export const CURRENT = 'current';
export const PREVIOUS = 'previous';

export class StoreLayout {
  readonly root: string;
  constructor(root: string) {
    this.root = root;
  }

  get objectsDir(): string {
    return join(this.root, 'objects', 'sha256');
  }
  /** Chunk indexes of held objects, by the object's oid (store/chunk-indexes.ts). */
  get chunkIndexesDir(): string {
    return join(this.root, 'objects', 'chunks');
  }
  get modelsDir(): string {
    return join(this.root, 'models');
  }
  get tmpDir(): string {
    return join(this.root, 'tmp');
  }
  /** Partial LFS downloads (`<oid>.part`), kept between passes so they resume. */
  get downloadsDir(): string {
    return join(this.root, 'tmp', 'downloads');
  }
  get stateFile(): string {
    return join(this.root, 'state.json');
  }
  get pinsFile(): string {
    return join(this.root, 'pins.json');
  }
  /**
   * Touched by a `modelsync reconcile` that switched versions, so an agent on
   * the same store restarts and checks the services at once instead of at its
   * next trigger.
   */
  get nudgeFile(): string {
    return join(this.root, 'nudge');
  }
  get lockFile(): string {
    return join(this.root, 'lock');
  }
  /** The bare clone of a remote registry, fetched incrementally between passes. */
  get registryGitDir(): string {
    return join(this.root, 'registry.git');
  }

  objectPath(oid: string): string {
    if (!SHA256_RE.test(oid)) throw new StoreError(`not a sha256 object id: ${JSON.stringify(oid)}`, { oid });
    return join(this.objectsDir, oid.slice(0, 2), oid.slice(2, 4), oid);
  }

  modelDir(model: string): string {
    checkModel(model);
    return join(this.modelsDir, model);
  }

  versionDir(model: string, version: string): string {
    checkVersion(version);
    return join(this.modelDir(model), version);
  }

  /** A file of a version; `name` comes from a manifest, so it is joined safely. */
  versionFile(model: string, version: string, name: string): string {
    return safeJoin(this.versionDir(model, version), name);
  }

  link(model: string, which: typeof CURRENT | typeof PREVIOUS): string {
    return join(this.modelDir(model), which);
  }
}

export function checkModel(model: string): void {
  if (!NAME_RE.test(model)) throw new StoreError(`not a valid model name: ${JSON.stringify(model)}`, { model });
}

export function checkVersion(version: string): void {
  if (!VERSION_RE.test(version) || RESERVED_VERSION_NAMES.has(version)) {
    throw new StoreError(`not a valid version name: ${JSON.stringify(version)}`, { version });
  }
}
