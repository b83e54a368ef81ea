/**
 * A reader for git's config file format, enough for `.lfsconfig` and a
 * repository's `config`: `[section]`, `[section "sub"]`, `[section.sub]`,
 * `key = value`, bare boolean keys, quoted values with escapes, `#`/`;`
 * comments and backslash line continuations. Section and key names are
 * case-insensitive, subsections are not, as in git. `include` directives are
 * not followed: .lfsconfig comes from an untrusted registry commit and must
 * not make us read other files.
 */
export class GitConfig {
  /** `section.sub.key` (section and key lower-cased) → values in file order. */
  private readonly values = new Map<string, string[]>();

  static parse(text: string): GitConfig {
    const cfg = new GitConfig();
    let section: string | null = null;
    const lines = text.replace(/\r\n/g, '\n').split('\n');
    for (let i = 0; i < lines.length; i++) {
      let line = lines[i]!;
      // A backslash at the very end continues the line (outside comments; close enough for config).
      while (line.endsWith('\\') && !line.endsWith('\\\\') && i + 1 < lines.length) line = line.slice(0, -1) + lines[++i]!;
      const trimmed = line.trim();
      if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith(';')) continue;
      if (trimmed.startsWith('[')) {
        const parsed = parseSectionHeader(trimmed);
        section = parsed?.name ?? null;
        // A key may follow the header on the same line: `[lfs] url = x`.
        if (parsed && parsed.rest.trim() !== '' && section) cfg.addLine(section, parsed.rest);
        continue;
      }
      if (section) cfg.addLine(section, trimmed);
    }
    return cfg;
  }

  /** A config from `section.key → value` pairs (for callers that have values, not a file). */
  static fromEntries(entries: Record<string, string>): GitConfig {
    const cfg = new GitConfig();
    for (const [k, v] of Object.entries(entries)) cfg.values.set(normaliseKey(k), [v]);
    return cfg;
  }

  /** Git's precedence: later files win. `merged = lower.overlay(higher)`. */
  overlay(higher: GitConfig): GitConfig {
    const out = new GitConfig();
    for (const [k, v] of this.values) out.values.set(k, [...v]);
    for (const [k, v] of higher.values) out.values.set(k, [...(out.values.get(k) ?? []), ...v]);
    return out;
  }

  /** The last value of `section.sub.key`, as `git config --get` returns it. */
  get(key: string): string | undefined {
    const all = this.values.get(normaliseKey(key));
    return all?.[all.length - 1];
  }

  private addLine(section: string, text: string): void {
    const m = /^([A-Za-z][A-Za-z0-9-]*)\s*(?:=\s*(.*))?$/.exec(text.trim());
    if (!m) return; // git would refuse the file; we ignore the line rather than guess
    const key = `${section}.${m[1]!.toLowerCase()}`;
    const value = m[2] === undefined ? 'true' : parseValue(m[2]);
    const list = this.values.get(key) ?? [];
    list.push(value);
    this.values.set(key, list);
  }
}

function normaliseKey(key: string): string {
  const first = key.indexOf('.');
  const last = key.lastIndexOf('.');
  if (first < 0) return key.toLowerCase();
  const section = key.slice(0, first).toLowerCase();
  const name = key.slice(last + 1).toLowerCase();
  return first === last ? `${section}.${name}` : `${section}.${key.slice(first + 1, last)}.${name}`;
}

function parseSectionHeader(line: string): { name: string; rest: string } | null {
  const quoted = /^\[\s*([A-Za-z0-9.-]+)\s+"((?:[^"\\]|\\.)*)"\s*\](.*)$/.exec(line);
  if (quoted) return { name: `${quoted[1]!.toLowerCase()}.${quoted[2]!.replace(/\\(.)/g, '$1')}`, rest: quoted[3]! };
  const plain = /^\[\s*([A-Za-z0-9.-]+)\s*\](.*)$/.exec(line);
  if (!plain) return null;
  // Deprecated `[section.sub]`: the subsection is lower-cased by git too.
  const dot = plain[1]!.indexOf('.');
  const name = dot < 0 ? plain[1]!.toLowerCase() : `${plain[1]!.slice(0, dot).toLowerCase()}.${plain[1]!.slice(dot + 1).toLowerCase()}`;
  return { name, rest: plain[2]! };
}

/** Unquote a value: quotes group, `\"` `\\` `\n` `\t` escape, an unquoted `#`/`;` starts a comment. */
function parseValue(raw: string): string {
  let out = '';
  let inQuote = false;
  let pendingSpace = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '\\' && i + 1 < raw.length) {
      const n = raw[++i]!;
      out += pendingSpace + (n === 'n' ? '\n' : n === 't' ? '\t' : n === 'b' ? '\b' : n);
      pendingSpace = '';
    } else if (c === '"') {
      out += pendingSpace;
      pendingSpace = '';
      inQuote = !inQuote;
    } else if (!inQuote && (c === '#' || c === ';')) {
      break;
    } else if (!inQuote && (c === ' ' || c === '\t')) {
      // Internal whitespace is kept, trailing whitespace is not.
      if (out !== '') pendingSpace += c;
    } else {
      out += pendingSpace + c;
      pendingSpace = '';
    }
  }
  return out;
}
