import { randomBytes } from 'node:crypto';
import { promises as fsp, constants } from 'node:fs';
import { dirname, join, basename } from 'node:path';

/** fsync a directory so a rename or link inside it survives a power cut. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    await fh.sync();
  } finally {
    await fh?.close();
  }
}

/** A unique sibling name for a temporary file next to `path`. */
export function tempSibling(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Write a file so a reader sees either the old content or all of the new,
 * never a partial file: write a temp sibling, fsync it, rename over, fsync dir.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644, opts: { exactMode?: boolean; syncDir?: boolean; mkdir?: boolean } = {}): Promise<void> {
  // syncDir false: the caller fsyncs the directory once for a batch of files; mkdir false: it made the directory.
  if (opts.mkdir !== false) await fsp.mkdir(dirname(path), { recursive: true });
  const tmp = tempSibling(path);
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(tmp, 'wx', mode);
    // open()'s mode is narrowed by the umask; exactMode means this mode and no other.
    if (opts.exactMode) await fh.chmod(mode);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fsp.rename(tmp, path);
  } catch (err) {
    await fh?.close().catch(() => {});
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  if (opts.syncDir !== false) await fsyncDir(dirname(path));
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await fsp.lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

export async function readFileOrNull(path: string): Promise<Buffer | null> {
  try {
    return await fsp.readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * What is left on the filesystem holding `path` (or its nearest existing
 * parent), for a disk-full message: a full disk may be out of bytes or out of
 * inodes, and the operator frees space differently for each.
 */
export async function describeFreeSpace(path: string): Promise<string> {
  let dir = path;
  for (let i = 0; i < 64; i++) {
    try {
      const s = await fsp.statfs(dir);
      const bytes = s.bavail * s.bsize;
      const what = s.files > 0 && s.ffree === 0 ? 'out of inodes' : bytes < 1 << 20 ? 'out of space' : 'nearly full';
      return `the filesystem of ${path} is ${what}: ${formatBytes(bytes)} and ${s.ffree} inodes free`;
    } catch {
      const up = dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  return `cannot tell how full the filesystem of ${path} is`;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(0)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(1)} GiB`;
}
