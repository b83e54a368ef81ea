import { describe, expect, it } from 'vitest';
import { parseObjectsSpec } from './index.ts';
import { MIN_PART_BYTES, partSizeFor } from './s3-upload.ts';

describe('--objects', () => {
  it('is the filesystem by default and a bucket with a normalised prefix for s3://', () => {
    expect(parseObjectsSpec(undefined)).toEqual({ kind: 'fs' });
    expect(parseObjectsSpec('fs')).toEqual({ kind: 'fs' });
    expect(parseObjectsSpec('s3://models')).toEqual({ kind: 's3', bucket: 'models', prefix: '' });
    expect(parseObjectsSpec('s3://models/')).toEqual({ kind: 's3', bucket: 'models', prefix: '' });
    expect(parseObjectsSpec('s3://models/hub/a/')).toEqual({ kind: 's3', bucket: 'models', prefix: 'hub/a/' });
  });

  it('refuses what is not a bucket or would make odd keys, naming the flag', () => {
    for (const bad of ['/var/lib/objects', 's3://', 's3://Models', 's3://a', 's3://models/../x', 's3://models/a\\b', 'gs://models']) {
      expect(() => parseObjectsSpec(bad), bad).toThrow(/--objects/);
    }
  });
});

describe('multipart part size', () => {
  it('keeps the preferred size, never under S3\'s 5 MiB, and grows so the largest object fits in 10,000 parts', () => {
    expect(partSizeFor(40 << 20, 16 << 20)).toBe(16 << 20);
    expect(partSizeFor(40 << 20, 1 << 20)).toBe(MIN_PART_BYTES);
    const huge = 256 * 2 ** 30;
    const part = partSizeFor(huge, 16 << 20);
    expect(Math.ceil(huge / part)).toBeLessThanOrEqual(10_000);
    expect(part % (1 << 20)).toBe(0);
  });
});
