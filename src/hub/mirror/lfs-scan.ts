/**
 * Which LFS objects a mirror must hold for a commit: every pointer under
 * `registry/` in that commit's tree (every version of every model, not only
 * the current ones, since a site override, a local pin or a rollback may ask
 * for any version the tree lists) and the chunk index each manifest names
 * (`files[].chunks`), so local agents get chunk deltas from the mirror too.
 * History is not scanned: an agent applies a branch tip, never an old commit.
 *
 * Registry content is untrusted: a pointer or manifest that does not parse
 * is simply not an object to fetch (the agents' own validation reports it).
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { GitError } from '../../errors.ts';
import type { LfsObject } from '../../lfs/types.ts';
import { MANIFEST_NAME, REGISTRY_DIR } from '../../registry/layout.ts';
import { MAX_POINTER_SIZE, parsePointer } from '../../registry/lfs-pointer.ts';
import { SHA256_RE } from '../../util/hash.ts';

const run = promisify(execFile);
/** A manifest bigger than this is not read (the agents' validation refuses such a registry anyway). */
const MAX_MANIFEST_BYTES = 4 << 20;

interface TreeEntry {
  blob: string;
  size: number;
  path: string;
}

async function listBlobs(gitDir: string, commit: string): Promise<TreeEntry[]> {
  const { stdout } = await run('git', ['ls-tree', '-r', '-l', '-z', commit, '--', `${REGISTRY_DIR}/`], { cwd: gitDir, maxBuffer: 256 << 20, encoding: 'utf8' });
  const out: TreeEntry[] = [];
  for (const rec of stdout.split('\0')) {
    // <mode> SP <type> SP <object> SP+ <size> TAB <path>
    const m = /^\d+ blob ([0-9a-f]{40,64}) +(\d+)\t(.*)$/s.exec(rec);
    if (m) out.push({ blob: m[1]!, size: Number(m[2]), path: m[3]! });
  }
  return out;
}

/** Read blobs with one `git cat-file --batch`. */
async function readBlobs(gitDir: string, blobs: readonly string[]): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  if (blobs.length === 0) return out;
  const stdout = await new Promise<Buffer>((resolve, reject) => {
    const child = spawn('git', ['cat-file', '--batch'], { cwd: gitDir, stdio: ['pipe', 'pipe', 'pipe'] });
    const parts: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => parts.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(parts)) : reject(new GitError(`git cat-file failed: ${stderr.trim() || `exit ${code}`}`))));
    child.stdin.end(`${blobs.join('\n')}\n`);
  });
  let pos = 0;
  for (const blob of blobs) {
    const nl = stdout.indexOf(0x0a, pos);
    if (nl < 0) break;
    const header = stdout.subarray(pos, nl).toString('utf8');
    const m = /^([0-9a-f]+) (\S+) (\d+)$/.exec(header);
    if (!m) {
      pos = nl + 1; // "<sha> missing"
      continue;
    }
    const size = Number(m[3]);
    out.set(blob, stdout.subarray(nl + 1, nl + 1 + size));
    pos = nl + 1 + size + 1;
  }
  return out;
}

/** The LFS objects `commit` refers to (deduplicated, in tree order). */
export async function lfsObjectsAt(gitDir: string, commit: string): Promise<LfsObject[]> {
  const entries = await listBlobs(gitDir, commit);
  const isManifest = (e: TreeEntry): boolean => e.path.endsWith(`/${MANIFEST_NAME}`) && e.size <= MAX_MANIFEST_BYTES;
  const wanted = entries.filter((e) => e.size <= MAX_POINTER_SIZE || isManifest(e));
  const blobs = await readBlobs(gitDir, [...new Set(wanted.map((e) => e.blob))]);
  const found = new Map<string, LfsObject>();
  const add = (oid: unknown, size: unknown): void => {
    if (typeof oid === 'string' && SHA256_RE.test(oid) && typeof size === 'number' && Number.isSafeInteger(size) && size >= 0 && !found.has(oid)) found.set(oid, { oid, size });
  };
  for (const e of wanted) {
    const bytes = blobs.get(e.blob);
    if (!bytes) continue;
    if (isManifest(e)) {
      for (const c of chunkIndexes(bytes)) add(c.oid, c.size);
      continue;
    }
    const p = parsePointer(bytes);
    if (p) add(p.oid, p.size);
  }
  return [...found.values()];
}

function chunkIndexes(bytes: Buffer): Array<{ oid: unknown; size: unknown }> {
  try {
    const doc = parseYaml(bytes.toString('utf8'), { maxAliasCount: 100 }) as { files?: unknown } | null;
    if (!doc || !Array.isArray(doc.files)) return [];
    return doc.files.flatMap((f: unknown) => {
      const c = (f as { chunks?: { oid?: unknown; size?: unknown } } | null)?.chunks;
      return c && typeof c === 'object' ? [{ oid: c.oid, size: c.size }] : [];
    });
  } catch {
    return [];
  }
}
