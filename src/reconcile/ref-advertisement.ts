/**
 * isomorphic-git's fetch insists on a `HEAD` in the server's ref
 * advertisement (it works out the remote's default branch even for a
 * single-branch fetch) and fails with `Could not find HEAD.` without one. A
 * bare repository made with `git init --bare` has HEAD -> master; when only
 * `main` was pushed, git's upload-pack advertises no HEAD at all, and
 * `git clone --branch main` works while we would not. We fetch a named branch
 * and never use HEAD, so when the advertisement lacks one we add a HEAD line
 * naming the first advertised ref's commit: it only satisfies that lookup.
 *
 * Protocol v1 smart HTTP (`GET info/refs?service=git-upload-pack`):
 *   pkt("# service=git-upload-pack\n") 0000
 *   pkt("<oid> <ref>\0<capabilities>\n") pkt("<oid> <ref>\n")... 0000
 */

type Pkt = { flush: true } | { flush: false; payload: Buffer };

function parsePkts(buf: Buffer): Pkt[] | null {
  const out: Pkt[] = [];
  let i = 0;
  while (i < buf.length) {
    if (i + 4 > buf.length) return null;
    const len = Number.parseInt(buf.subarray(i, i + 4).toString('ascii'), 16);
    if (!Number.isInteger(len) || (len !== 0 && len < 4) || i + Math.max(len, 4) > buf.length) return null;
    if (len === 0) out.push({ flush: true });
    else out.push({ flush: false, payload: buf.subarray(i + 4, i + len) });
    i += Math.max(len, 4);
  }
  return out;
}

function pkt(payload: string): Buffer {
  const body = Buffer.from(payload);
  return Buffer.concat([Buffer.from((body.length + 4).toString(16).padStart(4, '0')), body]);
}

/** The advertisement with a HEAD line added when it has refs but no HEAD; anything unexpected is returned as is. */
export function ensureAdvertisedHead(body: Buffer): Buffer {
  const pkts = parsePkts(body);
  if (!pkts) return body;
  // Skip the `# service=` section when present.
  let start = 0;
  const first = pkts[0];
  if (first && !first.flush && first.payload.toString('utf8').startsWith('# service=')) {
    start = pkts.findIndex((p) => p.flush) + 1;
    if (start === 0) return body;
  }
  const refLines: number[] = [];
  for (let k = start; k < pkts.length; k++) {
    const p = pkts[k]!;
    if (p.flush) break;
    refLines.push(k);
  }
  if (refLines.length === 0) return body;
  const names = refLines.map((k) => {
    const text = (pkts[k] as { payload: Buffer }).payload.toString('utf8');
    const line = text.split('\0')[0]!.trim();
    return { oid: line.slice(0, line.indexOf(' ')), name: line.slice(line.indexOf(' ') + 1) };
  });
  // An empty repository advertises `capabilities^{}` only; one with a HEAD is fine already.
  if (names.some((n) => n.name === 'HEAD') || names[0]!.name === 'capabilities^{}') return body;
  if (!/^[0-9a-f]{40}$/.test(names[0]!.oid)) return body;
  const insertAt = refLines[0]! + 1;
  const parts: Buffer[] = [];
  let offset = 0;
  // Re-emit the original bytes around the insertion point untouched.
  for (let k = 0; k < pkts.length; k++) {
    const p = pkts[k]!;
    const len = p.flush ? 4 : p.payload.length + 4;
    if (k === insertAt) parts.push(pkt(`${names[0]!.oid} HEAD\n`));
    parts.push(body.subarray(offset, offset + len));
    offset += len;
  }
  return Buffer.concat(parts);
}

/** Branch names in an advertisement (`refs/heads/x` -> `x`), for a message saying which exist. */
export function advertisedBranches(refs: ReadonlyArray<{ ref: string }>): string[] {
  return refs.map((r) => r.ref).filter((r) => r.startsWith('refs/heads/')).map((r) => r.slice('refs/heads/'.length));
}
