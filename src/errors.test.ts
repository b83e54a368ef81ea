import { describe, expect, it } from 'vitest';
import * as errors from './errors.ts';
import { ModelsyncError, type Problem } from './errors.ts';
import { TemplateError } from './templates/errors.ts';

const problem: Problem = { file: 'sites/a.yaml', line: 2, col: 3, path: 'models[0]', message: 'bad' };

/** One way to build each error class; a class missing here fails the coverage test below. */
const make: Record<string, () => ModelsyncError> = {
  UsageError: () => new errors.UsageError('m'),
  ValidationError: () => new errors.ValidationError([problem]),
  ConfigError: () => new errors.ConfigError('m'),
  ChecksumError: () => new errors.ChecksumError('m', { oid: 'a'.repeat(64) }),
  NetworkError: () => new errors.NetworkError('m', { status: 503 }),
  AuthError: () => new errors.AuthError('m'),
  NotFoundError: () => new errors.NotFoundError('m'),
  LockedError: () => new errors.LockedError('m'),
  StoreError: () => new errors.StoreError('m'),
  GitError: () => new errors.GitError('m'),
  ServiceError: () => new errors.ServiceError('m'),
  InterruptedError: () => new errors.InterruptedError('m'),
  UntrustedCommit: () => new errors.UntrustedCommit('m', { commit: 'a'.repeat(40), reason: 'unsigned' }),
  PassTimeoutError: () => new errors.PassTimeoutError('m'),
  TemplateError: () => new TemplateError('t.j2', 1, 2, 'm'),
};

describe('error classes', () => {
  it('covers every ModelsyncError subclass errors.ts exports', () => {
    const exported = Object.entries(errors)
      .filter(([, v]) => typeof v === 'function' && v.prototype instanceof ModelsyncError)
      .map(([k]) => k);
    expect(exported.length).toBeGreaterThan(10);
    for (const name of exported) expect(make, `add ${name} to the table`).toHaveProperty(name);
  });

  it.each(Object.entries(make))('%s: name equals code equals the class name, and it serialises', (cls, build) => {
    const err = build();
    expect(err).toBeInstanceOf(ModelsyncError);
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe(cls);
    expect(err.name).toBe(err.code);
    expect(err.constructor.name).toBe(cls);
    const json = JSON.parse(JSON.stringify(err)) as Record<string, unknown>;
    expect(Object.keys(json).sort()).toEqual(['code', 'data', 'message', 'retry']);
    expect(json.code).toBe(cls);
    expect(['stalling', 'waiting', 'generic']).toContain(json.retry);
  });

  it('a validation error lists its problems as file:line:col: path: message', () => {
    const err = new errors.ValidationError([problem, { ...problem, path: '', line: 9 }], 'refusing');
    expect(err.message).toBe('refusing (2 problems):\nsites/a.yaml:2:3: models[0]: bad\nsites/a.yaml:9:3: bad');
  });

  it('classifies network errors: 4xx other than 408/429 need a human', () => {
    expect(new errors.NetworkError('m', { status: 404 }).retry).toBe('stalling');
    expect(new errors.NetworkError('m', { status: 429 }).retry).toBe('generic');
    expect(new errors.NetworkError('m', {}).retry).toBe('generic');
  });
});
