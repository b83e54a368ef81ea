import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export const SHA256_RE = /^[0-9a-f]{64}$/;

export interface Digest {
  sha256: string;
  size: number;
}

/** Hash a file by streaming it: memory stays flat whatever the file size. */
export async function hashFile(path: string): Promise<Digest> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}

export function hashBytes(bytes: Uint8Array | string): Digest {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  return { sha256: createHash('sha256').update(buf).digest('hex'), size: buf.length };
}

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}
