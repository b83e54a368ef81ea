import { isAbsolute, join, relative, resolve, sep } from 'node:path';

/**
 * Why a relative path taken from untrusted input (a manifest, a template
 * destination, an HTTP request) is unsafe, or null when it is safe: it must
 * stay below whatever root it is joined to, on every platform.
 */
export function unsafeRelativePathReason(p: string): string | null {
  if (p.length === 0) return 'must not be empty';
  if (p.length > 1024) return 'is longer than 1024 characters';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(p)) return 'must not contain control characters';
  if (p.includes('\\')) return 'must not contain backslashes';
  if (p.startsWith('/') || isAbsolute(p) || /^[A-Za-z]:/.test(p)) return 'must be a relative path';
  const parts = p.split('/');
  if (parts.some((s) => s === '..')) return 'must not contain ".."';
  if (parts.some((s) => s === '' || s === '.')) return 'must not contain empty or "." segments';
  return null;
}

/** Join an untrusted relative path under root, refusing anything that escapes it. */
export function safeJoin(root: string, rel: string): string {
  const why = unsafeRelativePathReason(rel);
  if (why) throw new Error(`unsafe path ${JSON.stringify(rel)}: ${why}`);
  const full = resolve(root, rel);
  const back = relative(resolve(root), full);
  if (back === '' || back.startsWith('..') || isAbsolute(back)) throw new Error(`unsafe path ${JSON.stringify(rel)}: escapes ${root}`);
  return join(resolve(root), back.split(sep).join(sep));
}
