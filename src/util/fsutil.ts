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
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644, opts: { exactMode?: boolean } = {}): Promise<void> {
  await fsp.mkdir(dirname(path), { recursive: true });
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
  await fsyncDir(dirname(path));
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
