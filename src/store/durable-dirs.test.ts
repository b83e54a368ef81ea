import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/env.ts';
import { mkdirDurable } from './durable-dirs.ts';

describe('mkdirDurable', () => {
  it('creates missing directories and names each one whose parent entry it synced', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'objects'));
    expect(await mkdirDurable(join(root, 'objects/sha256/ab/cd'))).toEqual([join(root, 'objects/sha256/ab/cd'), join(root, 'objects/sha256/ab'), join(root, 'objects/sha256')]);
    expect(existsSync(join(root, 'objects/sha256/ab/cd'))).toBe(true);
    expect(await mkdirDurable(join(root, 'objects/sha256/ab/cd'))).toEqual([]);
    expect(await mkdirDurable(join(root, 'objects/sha256/ab/ef'))).toEqual([join(root, 'objects/sha256/ab/ef')]);
  });
});
