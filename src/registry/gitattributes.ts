/**
 * What `git add` would do with a file, decided the way git does it from the
 * repository's `.gitattributes` files: store it through the LFS filter (a
 * pointer), and normalise its line ends (`text`). publish must agree with
 * git on both, or `git status` shows its files modified and `git lfs fsck`
 * fails.
 *
 * The subset registries use: patterns with `*`, `?`, `[...]` and `**`
 * (gitignore rules: no slash matches the base name at any depth, a slash
 * anchors to the file's directory), attributes set, unset (`-`), unspecified
 * (`!`) or valued, later lines and deeper files winning.
 */
import { promises as fsp } from 'node:fs';
import { join, posix } from 'node:path';

/** An attribute's state: a value (`true` when just set), unset (false) or unspecified (null). */
export type AttrValue = string | false | null;

interface Rule {
  /** Directory of the .gitattributes file, repo-relative ('' for the root). */
  base: string;
  pattern: RegExp;
  attrs: Map<string, AttrValue>;
}

/** The rules of one .gitattributes file. */
export function parseGitattributes(text: string, base: string): Rule[] {
  const rules: Rule[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    // Quoted patterns (with spaces) are rare in registries; the first field is the pattern.
    const [pattern, ...fields] = line.split(/\s+/);
    if (!pattern || pattern.startsWith('!')) continue; // negative patterns are forbidden in attributes
    const attrs = new Map<string, AttrValue>();
    for (const a of fields) {
      if (a.startsWith('-')) attrs.set(a.slice(1), false);
      else if (a.startsWith('!')) attrs.set(a.slice(1), null);
      else if (a.includes('=')) attrs.set(a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1));
      else attrs.set(a, 'true');
    }
    // The built-in macro: binary = -diff -merge -text.
    if (attrs.get('binary') === 'true') for (const k of ['diff', 'merge', 'text']) attrs.set(k, false);
    rules.push({ base, pattern: globToRegExp(pattern), attrs });
  }
  return rules;
}

/** A gitattributes pattern as a regular expression over paths relative to its file's directory. */
export function globToRegExp(pattern: string): RegExp {
  let p = pattern;
  const anchored = p.replace(/\/$/, '').includes('/');
  if (p.startsWith('/')) p = p.slice(1);
  let re = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*' && p[i + 1] === '*') {
      const before = i === 0 || p[i - 1] === '/';
      const after = i + 2 === p.length || p[i + 2] === '/';
      if (before && after) {
        // "**/" matches any number of directories, "/**" everything inside.
        if (i + 2 === p.length) re += '.*';
        else {
          re += '(?:.*/)?';
          i++;
        }
        i++;
        continue;
      }
    }
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = p.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const body = p.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\');
        re += `[${body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(anchored ? `^${re}$` : `(?:^|/)${re}$`);
}

/** The value git gives attribute `name` for `path` (repo-relative, posix) under `rules` (outermost file first). */
export function attributeFor(rules: readonly Rule[], path: string, name: string): AttrValue {
  let value: AttrValue = null;
  for (const r of rules) {
    if (!r.attrs.has(name)) continue;
    if (r.base && !path.startsWith(`${r.base}/`)) continue;
    const rel = r.base ? path.slice(r.base.length + 1) : path;
    if (r.pattern.test(rel)) value = r.attrs.get(name)!;
  }
  return value;
}

export interface AddBehaviour {
  /** Stored as an LFS pointer (filter=lfs). */
  lfs: boolean;
  /** Stored with CRLF line ends turned into LF: `text` (or `eol`, which implies it); 'auto' when the content is text. */
  text: boolean | 'auto';
}

/**
 * What `git add` in the checkout at `dir` would do with `path`: read the
 * .gitattributes of the root and of every directory on the way to the file
 * (the ones git reads for it), and see what they say.
 */
export async function addBehaviour(dir: string, path: string): Promise<AddBehaviour> {
  const rules: Rule[] = [];
  const parts = path.split('/').slice(0, -1);
  for (let k = 0; k <= parts.length; k++) {
    const base = parts.slice(0, k).join('/');
    try {
      rules.push(...parseGitattributes(await fsp.readFile(join(dir, base, '.gitattributes'), 'utf8'), base));
    } catch {
      // No .gitattributes there.
    }
  }
  const p = posix.normalize(path);
  const text = attributeFor(rules, p, 'text');
  const eol = attributeFor(rules, p, 'eol');
  return {
    lfs: attributeFor(rules, p, 'filter') === 'lfs',
    text: text === 'auto' ? 'auto' : text === 'true' || (text === null && typeof eol === 'string'),
  };
}

/** The bytes git stores for a file `git add`s with this behaviour (line ends normalised for text). */
export function normaliseForAdd(bytes: Buffer, how: AddBehaviour): Buffer {
  if (how.text === false) return bytes;
  // text=auto: git leaves what it judges binary (a NUL in the first 8000 bytes) alone.
  if (how.text === 'auto' && bytes.subarray(0, 8000).includes(0)) return bytes;
  if (!bytes.includes(13)) return bytes;
  return Buffer.from(bytes.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
}
