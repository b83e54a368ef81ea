/**
 * The Git LFS batch API (docs/api/batch.md of git-lfs): which objects the
 * client may download or must upload, and where. Validation is per object so
 * one bad oid does not fail the rest, as the spec asks.
 */
import { z } from 'zod';
import { SHA256_RE } from '../util/hash.ts';
import { HttpError } from './http-util.ts';

const BatchRequestSchema = z.object({
  operation: z.enum(['download', 'upload']),
  transfers: z.array(z.string()).optional(),
  ref: z.object({ name: z.string() }).nullish(),
  objects: z.array(z.unknown()).max(100_000),
  hash_algo: z.string().optional(),
});
export type BatchRequest = z.infer<typeof BatchRequestSchema>;

export interface BatchAction {
  href: string;
  header?: Record<string, string>;
  expires_in: number;
}

export interface BatchObjectResult {
  oid: string;
  size: number;
  authenticated?: boolean;
  actions?: Record<string, BatchAction>;
  error?: { code: number; message: string };
}

export interface BatchResponse {
  transfer: 'basic';
  objects: BatchObjectResult[];
  hash_algo: 'sha256';
}

export function parseBatchRequest(body: unknown): BatchRequest {
  const parsed = BatchRequestSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new HttpError(422, 'InvalidBatchRequest', `invalid batch request: ${issue.path.join('.') || '(body)'}: ${issue.message}`);
  }
  if (parsed.data.hash_algo !== undefined && parsed.data.hash_algo !== 'sha256') {
    throw new HttpError(409, 'UnsupportedHashAlgo', `hash_algo ${JSON.stringify(parsed.data.hash_algo)} is not supported; use sha256`);
  }
  // The spec: the transfer chosen MUST be one the client listed (basic when it lists none).
  if (parsed.data.transfers !== undefined && parsed.data.transfers.length > 0 && !parsed.data.transfers.includes('basic')) {
    throw new HttpError(422, 'UnsupportedTransfer', `none of the transfers ${JSON.stringify(parsed.data.transfers.slice(0, 10))} is supported; this hub speaks "basic"`);
  }
  return parsed.data;
}

export interface BatchEnv {
  /** Stored size of an object in this repo, or null. */
  storedSize(oid: string): Promise<number | null>;
  action(oid: string, op: 'download' | 'upload' | 'verify', size: number): BatchAction | Promise<BatchAction>;
  maxObjectBytes: number;
}

/** Decide, per object, what the client gets. */
export async function planBatch(req: BatchRequest, env: BatchEnv): Promise<BatchResponse> {
  const results: BatchObjectResult[] = new Array(req.objects.length);
  const CONCURRENCY = 32;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < req.objects.length) {
      const i = next++;
      results[i] = await planOne(req.operation, req.objects[i], env);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, req.objects.length) }, worker));
  return { transfer: 'basic', objects: results, hash_algo: 'sha256' };
}

async function planOne(op: BatchRequest['operation'], raw: unknown, env: BatchEnv): Promise<BatchObjectResult> {
  const o = (raw && typeof raw === 'object' ? raw : {}) as { oid?: unknown; size?: unknown };
  // Never String() an arbitrary value: a deeply nested array would overflow the stack.
  const oid = typeof o.oid === 'string' ? o.oid : '';
  const size = typeof o.size === 'number' ? o.size : -1;
  // Echo back something printable even for garbage, and never an unbounded string.
  const echoOid = oid.slice(0, 128);
  if (!SHA256_RE.test(oid)) return { oid: echoOid, size, error: { code: 422, message: 'invalid oid: must be 64 lowercase hex characters' } };
  if (!Number.isSafeInteger(size) || size < 0) return { oid, size, error: { code: 422, message: 'invalid size: must be a non-negative integer' } };
  const stored = await env.storedSize(oid);
  if (op === 'download') {
    if (stored === null) return { oid, size, error: { code: 404, message: 'object not found' } };
    if (stored !== size) return { oid, size, error: { code: 422, message: `size mismatch: the hub has ${stored} bytes for this oid` } };
    return { oid, size, authenticated: true, actions: { download: await env.action(oid, 'download', size) } };
  }
  if (size > env.maxObjectBytes) return { oid, size, error: { code: 422, message: `object is larger than the hub accepts (${env.maxObjectBytes} bytes)` } };
  // Already stored with the same size: no actions tells the client to skip it.
  if (stored === size) return { oid, size, authenticated: true };
  if (stored !== null) return { oid, size, error: { code: 422, message: `size mismatch: the hub has ${stored} bytes for this oid` } };
  return { oid, size, authenticated: true, actions: { upload: await env.action(oid, 'upload', size), verify: await env.action(oid, 'verify', size) } };
}
