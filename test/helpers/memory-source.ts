/**
 * A registry held in memory (path → text), read through the same
 * RegistrySource interface as a working tree or a commit, so unit tests get
 * real loadRegistry results without touching the disk. Model files are
 * written as LFS pointers by `pointer()`.
 */
import { createHash } from 'node:crypto';
import { hashBytes } from '../../src/util/hash.ts';
import { loadRegistry, type LoadResult } from '../../src/registry/load.ts';
import { chunkIndexRelPath } from '../../src/registry/layout.ts';
import { parsePointer } from '../../src/registry/lfs-pointer.ts';
import type { DirEntry, FileContent, RegistrySource } from '../../src/registry/source.ts';

export class MemorySource implements RegistrySource {
  readonly description: string;
  constructor(private readonly files: Record<string, string>, description = 'memory') {
    this.description = description;
  }

  async readText(path: string): Promise<string | null> {
    return Object.hasOwn(this.files, path) ? this.files[path]! : null;
  }

  async list(dir: string): Promise<DirEntry[] | null> {
    const prefix = dir === '' ? '' : `${dir.replace(/\/+$/, '')}/`;
    const seen = new Map<string, DirEntry['type']>();
    for (const k of Object.keys(this.files)) {
      if (!k.startsWith(prefix)) continue;
      const rest = k.slice(prefix.length);
      const slash = rest.indexOf('/');
      seen.set(slash < 0 ? rest : rest.slice(0, slash), slash < 0 ? 'file' : 'dir');
    }
    if (seen.size === 0) return null;
    return [...seen].map(([name, type]) => ({ name, type })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async inspect(path: string): Promise<FileContent | null> {
    const text = await this.readText(path);
    if (text === null) return null;
    const bytes = Buffer.from(text);
    const pointer = parsePointer(bytes);
    if (pointer) return { kind: 'pointer', pointer };
    return {
      kind: 'content',
      size: bytes.length,
      digest: async () => hashBytes(bytes),
      bytes: async () => bytes,
    };
  }
}

export const oidOf = (seed: string): string => createHash('sha256').update(seed).digest('hex');

export function pointer(oid: string, size: number): string {
  return `version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\nsize ${size}\n`;
}

/** A version folder: manifest.yaml plus a pointer per file (`files`: name → [oid, size] or a seed). */
export function version(model: string, v: string, files: Record<string, { oid: string; size: number; chunks?: { oid: string; size: number } }>): Record<string, string> {
  const out: Record<string, string> = {};
  const entries = Object.entries(files).map(([name, f]) => {
    out[`registry/${model}/${v}/${name}`] = pointer(f.oid, f.size);
    if (f.chunks) out[`registry/${model}/${v}/${chunkIndexRelPath(name)}`] = pointer(f.chunks.oid, f.chunks.size);
    return `  - name: ${name}\n    sha256: ${f.oid}\n    size: ${f.size}\n${f.chunks ? `    chunks: {oid: ${f.chunks.oid}, size: ${f.chunks.size}}\n` : ''}`;
  });
  out[`registry/${model}/${v}/manifest.yaml`] = `name: ${model}\nversion: "${v}"\nframework: test\nfiles:\n${entries.join('')}`;
  return out;
}

export async function load(files: Record<string, string>, description = 'memory'): Promise<LoadResult> {
  return loadRegistry(new MemorySource(files, description));
}
