/**
 * Build and change registry repositories with the stock `git` and `git lfs`
 * clients, as a team would: files are cleaned into LFS pointers by git-lfs,
 * YAML stays plain text.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { git, writeTree } from '../../helpers/env.ts';

export const GITATTRIBUTES = 'registry/** filter=lfs diff=lfs merge=lfs -text\nregistry/**/*.yaml !filter !diff !merge text\nregistry/**/*.md !filter !diff !merge text\n';

export class TestRegistry {
  constructor(readonly dir: string, readonly env: NodeJS.ProcessEnv) {}

  static init(dir: string, env: NodeJS.ProcessEnv): TestRegistry {
    mkdirSync(dir, { recursive: true });
    git(['init', '-q', '-b', 'main'], { cwd: dir, env });
    // The pre-push hook that uploads LFS objects when the registry is pushed to a hub.
    git(['lfs', 'install', '--local'], { cwd: dir, env });
    writeTree(dir, { '.gitattributes': GITATTRIBUTES, 'registry/model_registry.yaml': 'models: {}\n' });
    return new TestRegistry(dir, env);
  }

  git(...args: string[]): string {
    return git(args, { cwd: this.dir, env: this.env }).stdout.trim();
  }

  /** Add a version: files written to the work tree (git-lfs cleans them), manifest listing their sha256. */
  addVersion(
    model: string, version: string, files: Record<string, string | Uint8Array>, extra: Record<string, unknown> = {},
    fileFields: Record<string, Record<string, unknown>> = {},
  ): void {
    const entries = Object.entries(files).map(([name, content]) => {
      const buf = typeof content === 'string' ? Buffer.from(content) : Buffer.from(content);
      return { name, sha256: createHash('sha256').update(buf).digest('hex'), size: buf.length, ...fileFields[name] };
    });
    const base = `registry/${model}/${version}`;
    writeTree(this.dir, Object.fromEntries(Object.entries(files).map(([n, c]) => [`${base}/${n}`, c])));
    writeTree(this.dir, { [`${base}/manifest.yaml`]: stringify({ name: model, version, framework: 'test', files: entries, ...extra }) });
  }

  /** Set current_version (and previous_version to the old current), as `promote` does. */
  setCurrent(model: string, version: string, fields: Record<string, unknown> = {}): void {
    const path = join(this.dir, 'registry/model_registry.yaml');
    const doc = (parse(readFileSync(path, 'utf8')) ?? {}) as { models: Record<string, Record<string, unknown>> };
    doc.models ??= {};
    const old = doc.models[model]?.current_version;
    doc.models[model] = { ...doc.models[model], current_version: version, ...(old && old !== version ? { previous_version: old } : {}), ...fields };
    writeFileSync(path, stringify(doc));
  }

  site(name: string, doc: Record<string, unknown>): void {
    const path = join(this.dir, `sites/${name}.yaml`);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, stringify(doc));
  }

  write(rel: string, text: string): void {
    writeTree(this.dir, { [rel]: text });
  }

  commit(message: string): string {
    this.git('add', '-A');
    this.git('commit', '-q', '-m', message);
    return this.head();
  }

  head(): string {
    return this.git('rev-parse', 'HEAD');
  }

  /** Where git-lfs keeps an object in this checkout. */
  lfsObject(oid: string): string {
    return join(this.dir, '.git', 'lfs', 'objects', oid.slice(0, 2), oid.slice(2, 4), oid);
  }
}

export function sha256(content: string | Uint8Array): string {
  return createHash('sha256').update(content).digest('hex');
}
