/**
 * Typed errors with stable codes.
 *
 * Every error modelsync raises on purpose is a ModelsyncError: `code` is stable
 * (scripts and the hub match on it), `data` carries the structured details, and
 * `retry` says what a reconcile loop should do about it, after Flux's
 * classification: a *stalling* error needs a human (do not retry until the
 * input changes), a *waiting* one clears by itself (retry after a delay), a
 * *generic* one is retried with backoff.
 */
import { escapeControl, escapeControlKeepLines } from './util/escape.ts';

export type RetryClass = 'stalling' | 'waiting' | 'generic';

export interface ErrorOptions {
  data?: Record<string, unknown>;
  retry?: RetryClass;
  cause?: unknown;
}

export class ModelsyncError extends Error {
  readonly code: string;
  readonly data: Record<string, unknown>;
  readonly retry: RetryClass;

  constructor(code: string, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = code;
    this.code = code;
    this.data = options.data ?? {};
    this.retry = options.retry ?? 'generic';
  }

  toJSON(): { code: string; message: string; retry: RetryClass; data: Record<string, unknown> } {
    return { code: this.code, message: this.message, retry: this.retry, data: this.data };
  }
}

/** Bad command-line usage; the CLI exits 2. */
export class UsageError extends ModelsyncError {
  constructor(message: string, data?: Record<string, unknown>) {
    super('UsageError', message, { data, retry: 'stalling' });
  }
}

/** A problem found in registry content; `problems` holds every one of them. */
export class ValidationError extends ModelsyncError {
  readonly problems: readonly Problem[];
  constructor(problems: readonly Problem[], context = 'registry is invalid') {
    const first = problems.slice(0, 20).map(formatProblem).join('\n');
    const more = problems.length > 20 ? `\n… and ${problems.length - 20} more` : '';
    super('ValidationError', `${context} (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${first}${more}`, {
      data: { problems },
      retry: 'stalling',
    });
    this.problems = problems;
  }
}

/** A local configuration file (agent.yaml, tokens.yaml) is unusable. */
export class ConfigError extends ModelsyncError {
  constructor(message: string, data?: Record<string, unknown>) {
    super('ConfigError', message, { data, retry: 'stalling' });
  }
}

/** Bytes did not hash to what Git declared. */
export class ChecksumError extends ModelsyncError {
  constructor(message: string, data: { oid: string; actual?: string; expectedSize?: number; actualSize?: number; file?: string }) {
    super('ChecksumError', message, { data, retry: 'generic' });
  }
}

/** A network peer could not be reached or answered with an error. */
export class NetworkError extends ModelsyncError {
  constructor(message: string, data: { url?: string; status?: number } & Record<string, unknown> = {}, cause?: unknown) {
    const status = typeof data.status === 'number' ? data.status : undefined;
    // 4xx other than 408/429 will not fix themselves by retrying.
    const retry: RetryClass = status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429 ? 'stalling' : 'generic';
    super('NetworkError', message, { data, retry, cause });
  }
}

/** Credentials missing or refused. */
export class AuthError extends ModelsyncError {
  constructor(message: string, data?: Record<string, unknown>) {
    super('AuthError', message, { data, retry: 'stalling' });
  }
}

/** Something asked for does not exist (a model, a version, a repo, an object). */
export class NotFoundError extends ModelsyncError {
  constructor(message: string, data?: Record<string, unknown>) {
    super('NotFoundError', message, { data, retry: 'stalling' });
  }
}

/** Another pass holds the store lock. */
export class LockedError extends ModelsyncError {
  constructor(message: string, data?: Record<string, unknown>) {
    super('LockedError', message, { data, retry: 'waiting' });
  }
}

/** The store cannot be written (disk full, permissions, corrupt state). */
export class StoreError extends ModelsyncError {
  constructor(message: string, data?: Record<string, unknown>, cause?: unknown) {
    super('StoreError', message, { data, retry: 'generic', cause });
  }
}

/** A Git operation failed (fetch, commit, push, revert). */
export class GitError extends ModelsyncError {
  constructor(message: string, data?: Record<string, unknown>, cause?: unknown) {
    super('GitError', message, { data, retry: 'generic', cause });
  }
}

/** A service restart, reload or health check failed. */
export class ServiceError extends ModelsyncError {
  constructor(message: string, data?: Record<string, unknown>, cause?: unknown) {
    super('ServiceError', message, { data, retry: 'stalling', cause });
  }
}

/**
 * A pass ran past its overall deadline (`pass_timeout`) and stopped: partial
 * downloads are kept, the lock released; the next pass resumes.
 */
export class PassTimeoutError extends ModelsyncError {
  constructor(message: string, data?: Record<string, unknown>) {
    super('PassTimeoutError', message, { data, retry: 'generic' });
  }
}

/**
 * The user stopped the command (Ctrl-C, SIGTERM) and it stopped cleanly:
 * whatever it had half done was undone. The CLI exits 130, as a shell does.
 */
export class InterruptedError extends ModelsyncError {
  constructor(message: string, data?: Record<string, unknown>) {
    super('InterruptedError', message, { data, retry: 'stalling' });
  }
}

/**
 * A registry commit the site's `verify:` config does not trust (unsigned, a bad
 * signature, a key not trusted, expired or revoked). Stalling: nothing changes
 * and the same commit is not retried; a new commit on the branch is.
 */
export class UntrustedCommit extends ModelsyncError {
  constructor(message: string, data: { commit: string; reason: string; tip?: string } & Record<string, unknown>) {
    super('UntrustedCommit', message, { data, retry: 'stalling' });
  }
}

/** One problem in one registry file, positioned for editors and CI annotations. */
export interface Problem {
  file: string;
  line: number;
  col: number;
  /** Dotted YAML path inside the file (`models.face_recognition.current_version`); empty for the whole file. */
  path: string;
  message: string;
}

/** `file:line:col: path: message`; the file name, path and message come from the registry, so are escaped. */
export function formatProblem(p: Problem): string {
  return `${escapeControl(p.file)}:${p.line}:${p.col}: ${p.path ? `${escapeControl(p.path)}: ` : ''}${escapeControlKeepLines(p.message)}`;
}

/** Linux errno codes that mean "the disk cannot take more". */
export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Exit codes, the command line's contract (DESIGN.md): 0 done / in sync, 1 error, 2 usage, 3 conflicts, 4 degraded. `wait` adds 5 (timed out). */
export const EXIT = { ok: 0, error: 1, usage: 2, conflicts: 3, degraded: 4 } as const;
