import { describe, expect, it } from 'vitest';
import { AuthError, ChecksumError, NetworkError, NotFoundError } from '../errors.ts';
import { parseContentRange } from './download.ts';
import { backoffDelay, DEFAULT_RETRY, isRetryable, parseRetryAfter, retryDelay } from './retry.ts';

describe('retry policy', () => {
  it('grows exponentially up to the cap, with full jitter', () => {
    const p = { ...DEFAULT_RETRY, baseDelayMs: 100, maxDelayMs: 1000 };
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffDelay(a, p, () => 0.999999))).toEqual([99, 199, 399, 799, 999, 999]);
    expect(backoffDelay(3, p, () => 0)).toBe(0);
  });

  it('honours Retry-After in seconds or as a date, bounded', () => {
    expect(parseRetryAfter('7')).toBe(7000);
    expect(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 0, 30)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(30_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    const err = new NetworkError('busy', { status: 503, retryAfterMs: 7000 });
    expect(retryDelay(err, 0, { ...DEFAULT_RETRY, baseDelayMs: 1 })).toBe(7000);
    expect(retryDelay(new NetworkError('busy', { status: 503, retryAfterMs: 3_600_000 }), 0, DEFAULT_RETRY)).toBe(DEFAULT_RETRY.maxRetryAfterMs);
  });

  it('retries network errors, timeouts, 408, 429 and 5xx; not other 4xx, checksums or missing objects', () => {
    expect(isRetryable(new NetworkError('reset'))).toBe(true);
    for (const status of [408, 429, 500, 502, 503, 504]) expect(isRetryable(new NetworkError('x', { status }))).toBe(true);
    for (const status of [400, 404, 409, 413, 422]) expect(isRetryable(new NetworkError('x', { status }))).toBe(false);
    expect(isRetryable(new AuthError('no'))).toBe(false);
    expect(isRetryable(new NotFoundError('no'))).toBe(false);
    expect(isRetryable(new ChecksumError('bad', { oid: 'x' }))).toBe(false);
    expect(isRetryable(Object.assign(new Error('aborted'), { name: 'AbortError' }))).toBe(false);
  });
});

describe('Content-Range', () => {
  it('parses what servers send and rejects the rest', () => {
    expect(parseContentRange('bytes 100-199/200')).toEqual({ start: 100, end: 199, total: 200 });
    expect(parseContentRange('bytes 0-9/*')).toEqual({ start: 0, end: 9, total: undefined });
    expect(parseContentRange('bytes */200')).toBeNull();
    expect(parseContentRange(undefined)).toBeNull();
  });
});
