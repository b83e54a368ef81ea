/**
 * A raw Git commit object split into what was signed and the signature.
 *
 * Git signs the commit object as it would be without its `gpgsig` header
 * (`git commit -S` builds the object, hands it to gpg or ssh-keygen, then
 * inserts the header), so the payload is rebuilt from the raw bytes rather
 * than from parsed fields: any byte of the object that is not the signature
 * is covered, including headers we do not understand (`mergetag`, `encoding`).
 */

export interface SplitCommit {
  /** The bytes that were signed: the object minus its `gpgsig` header. */
  payload: Uint8Array;
  /** The signature as armored text (continuation lines unindented), or undefined when unsigned. */
  signature?: string;
  tree: string;
  parents: string[];
  /** The committer's e-mail (between < and >), the identity `allowed_signers` principals match. */
  committerEmail: string;
  /** The committer time in seconds since the epoch, the time at which key validity is judged. */
  committerTime: number;
}

export class CommitFormatError extends Error {}

const NL = 0x0a;
const SIG_HEADER = 'gpgsig';

/** Split a commit object (its content, without the `commit <size>\0` header). Pure. */
export function splitCommit(raw: Uint8Array): SplitCommit {
  const lines: Array<{ start: number; end: number }> = [];
  let pos = 0;
  // Headers end at the first empty line; the message after it is never parsed for headers.
  for (;;) {
    const nl = raw.indexOf(NL, pos);
    if (nl === -1) throw new CommitFormatError('commit object has no end of headers');
    if (nl === pos) break;
    lines.push({ start: pos, end: nl + 1 });
    pos = nl + 1;
  }
  const text = (l: { start: number; end: number }): string => Buffer.from(raw.subarray(l.start, l.end - 1)).toString('utf8');

  // Group continuation lines (leading space) with the header they continue.
  const headers: Array<{ name: string; value: string[]; start: number; end: number }> = [];
  for (const l of lines) {
    const t = text(l);
    if (t.startsWith(' ')) {
      const h = headers.at(-1);
      if (!h) throw new CommitFormatError('commit object starts with a continuation line');
      h.value.push(t.slice(1));
      h.end = l.end;
      continue;
    }
    const sp = t.indexOf(' ');
    headers.push({ name: sp === -1 ? t : t.slice(0, sp), value: [sp === -1 ? '' : t.slice(sp + 1)], start: l.start, end: l.end });
  }

  const sigs = headers.filter((h) => h.name === SIG_HEADER);
  // Two signatures would leave "which one counts" to the verifier's reading order: refuse.
  if (sigs.length > 1) throw new CommitFormatError('commit object has more than one gpgsig header');
  const sig = sigs[0];
  const payload = sig ? concat(raw.subarray(0, sig.start), raw.subarray(sig.end)) : raw;

  const tree = headers.find((h) => h.name === 'tree')?.value[0];
  if (!tree || !/^[0-9a-f]{40}$/.test(tree) || headers[0]?.name !== 'tree') throw new CommitFormatError('commit object does not start with a tree');
  const committer = headers.filter((h) => h.name === 'committer');
  if (committer.length !== 1) throw new CommitFormatError('commit object must have exactly one committer');
  const m = /<([^<>]*)>\s+(\d+)\s+[+-]\d{4}$/.exec(committer[0]!.value[0]!);
  if (!m) throw new CommitFormatError('commit object has a malformed committer line');
  return {
    payload,
    ...(sig ? { signature: `${sig.value.join('\n')}\n` } : {}),
    tree,
    parents: headers.filter((h) => h.name === 'parent').map((h) => h.value[0]!),
    committerEmail: m[1]!,
    committerTime: Number(m[2]),
  };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
