import { describe, expect, test } from 'vitest';
import { isLoopbackHost, nestedDeeperThan } from './http-util.ts';

describe('isLoopbackHost', () => {
  test('loopback names and addresses, with or without a port', () => {
    for (const h of [undefined, 'localhost', 'LOCALHOST:9080', 'api.localhost', '127.0.0.1', '127.9.9.9:1', '[::1]', '[::1]:9080', '[::ffff:127.0.0.1]:80']) {
      expect(isLoopbackHost(h), String(h)).toBe(true);
    }
  });
  test('anything else, including names that merely start like loopback', () => {
    for (const h of ['evil.example', '127.0.0.1.evil.example', 'localhost.evil.example', '10.0.0.1', '[::2]:80', '[fe80::1]', '0.0.0.0']) {
      expect(isLoopbackHost(h), h).toBe(false);
    }
    expect(isLoopbackHost('hub.example:443', ['hub.example'])).toBe(true);
  });
});

describe('nestedDeeperThan', () => {
  test('counts object and array levels without recursion', () => {
    expect(nestedDeeperThan({ a: [1, { b: 2 }] }, 3)).toBe(false);
    expect(nestedDeeperThan({ a: [1, { b: {} }] }, 3)).toBe(true);
    expect(nestedDeeperThan(JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`), 64)).toBe(true);
    expect(nestedDeeperThan('x', 0)).toBe(false);
  });
});
