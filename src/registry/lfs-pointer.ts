/**
 * Git LFS pointer files (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md).
 * We write them byte for byte as git-lfs does and read them as leniently as
 * the spec allows, so a pointer made by either tool is understood by both.
 */
export const LFS_SPEC_URL = 'https://git-lfs.github.com/spec/v1';
const LEGACY_SPEC_URL = 'https://hawser.github.com/spec/v1';
/** git-lfs never treats anything larger than this as a pointer. */
export const MAX_POINTER_SIZE = 1024;

export interface LfsPointer {
  oid: string;
  size: number;
}

export function formatPointer(p: LfsPointer): string {
  return `version ${LFS_SPEC_URL}\noid sha256:${p.oid}\nsize ${p.size}\n`;
}

/** Parse a pointer; null when the bytes are not a pointer (then they are the content itself). */
export function parsePointer(bytes: Uint8Array | string): LfsPointer | null {
  if (bytes.length > MAX_POINTER_SIZE) return null;
  const text = typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8');
  if (!text.startsWith('version ')) return null;
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const kv = new Map<string, string>();
  for (const line of lines) {
    const sp = line.indexOf(' ');
    if (sp <= 0) return null;
    const key = line.slice(0, sp);
    if (!/^[a-z0-9.-]+$/.test(key) || kv.has(key)) return null;
    kv.set(key, line.slice(sp + 1));
  }
  const version = kv.get('version');
  if (version !== LFS_SPEC_URL && version !== LEGACY_SPEC_URL) return null;
  const oidField = kv.get('oid');
  const sizeField = kv.get('size');
  if (!oidField || !sizeField) return null;
  const m = /^sha256:([0-9a-f]{64})$/.exec(oidField);
  if (!m || !/^(0|[1-9]\d*)$/.test(sizeField)) return null;
  const size = Number(sizeField);
  if (!Number.isSafeInteger(size)) return null;
  return { oid: m[1]!, size };
}

/** Where git-lfs keeps an object in a repository's local cache (`.git/lfs/objects/aa/bb/<oid>`). */
export function lfsObjectRelPath(oid: string): string {
  return `lfs/objects/${oid.slice(0, 2)}/${oid.slice(2, 4)}/${oid}`;
}
