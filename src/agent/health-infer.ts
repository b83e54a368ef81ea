/**
 * The inference smoke test: a KServe v2 inference request, read from a file
 * on the site (never from the registry), POSTed to the model server; the
 * answer must name the expected outputs with the expected shapes, and
 * optionally only finite numbers and values within a tolerance. A model that
 * loads but answers nonsense (the wrong shape, NaN) fails here, where a
 * readiness URL would have said "ready".
 */
import { promises as fsp } from 'node:fs';
import { errorMessage } from '../errors.ts';
import type { InferCheck } from '../registry/schema.ts';
import { redactUrl } from '../util/redact.ts';
import { escapeControl } from '../util/escape.ts';
import { requestErrorMessage } from './net-error.ts';

export type InferSpec = InferCheck;

// Smoke requests and their answers are small; a bound keeps a confused server from filling memory.
const REQUEST_LIMIT = 16 << 20;
const ANSWER_LIMIT = 64 << 20;

interface Output {
  name?: unknown;
  shape?: unknown;
  data?: unknown;
}

/** One try: an empty message when the answer is as expected, otherwise why not. */
export async function checkInfer(spec: InferSpec, budgetMs: number, deps: { fetch: typeof fetch; signal?: AbortSignal }): Promise<{ message: string; timedOut: boolean }> {
  if (!spec.url) return { message: `infer: no url for model ${spec.model} (give infer.url, or a serving view with a url that lists it)`, timedOut: false };
  let body: string;
  try {
    const st = await fsp.stat(spec.request);
    if (st.size > REQUEST_LIMIT) return { message: `infer: ${spec.request} is larger than ${REQUEST_LIMIT >> 20} MiB`, timedOut: false };
    body = await fsp.readFile(spec.request, 'utf8');
    const doc = JSON.parse(body) as { inputs?: unknown };
    if (!doc || typeof doc !== 'object' || !Array.isArray(doc.inputs)) return { message: `infer: ${spec.request} is not a KServe v2 inference request (no "inputs" list)`, timedOut: false };
  } catch (err) {
    return { message: `infer: cannot read the request ${spec.request}: ${errorMessage(err)}`, timedOut: false };
  }
  const url = `${spec.url.replace(/\/+$/, '')}/v2/models/${encodeURIComponent(spec.model)}/infer`;
  const what = `POST ${redactUrl(url)}`;
  const timeout = AbortSignal.timeout(budgetMs);
  const signal = deps.signal ? AbortSignal.any([deps.signal, timeout]) : timeout;
  let status: number;
  let text: string;
  try {
    const res = await deps.fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal, redirect: 'manual' });
    status = res.status;
    const len = Number(res.headers.get('content-length') ?? 0);
    if (len > ANSWER_LIMIT) {
      await res.body?.cancel().catch(() => {});
      return { message: `${what}: the answer is larger than ${ANSWER_LIMIT >> 20} MiB`, timedOut: false };
    }
    text = await res.text();
  } catch (err) {
    if (timeout.aborted) return { message: `${what}: timed out after ${budgetMs} ms`, timedOut: true };
    return { message: `${what}: ${requestErrorMessage(err)}`, timedOut: false };
  }
  if (status < 200 || status >= 300) return { message: `${what} answered ${status}${serverError(text)}`, timedOut: false };
  let answer: { outputs?: unknown };
  try {
    answer = JSON.parse(text) as { outputs?: unknown };
  } catch {
    return { message: `${what}: the answer is not JSON`, timedOut: false };
  }
  const problem = judgeAnswer(answer, spec.expect);
  return { message: problem ? `${what}: ${problem}` : '', timedOut: false };
}

/** Why the answer is not what `expect` says, or '' when it is. Pure. */
export function judgeAnswer(answer: { outputs?: unknown }, expect: InferSpec['expect']): string {
  if (!Array.isArray(answer.outputs)) return 'the answer has no "outputs" list';
  const outputs = answer.outputs as Output[];
  for (const [name, want] of Object.entries(expect.outputs)) {
    const o = outputs.find((x) => x && x.name === name);
    if (!o) return `no output ${JSON.stringify(name)} (the answer has ${escapeControl(outputs.slice(0, 20).map((x) => JSON.stringify(x?.name)).join(', ')) || 'none'})`;
    const shape = Array.isArray(o.shape) && o.shape.every((d) => Number.isInteger(d)) ? (o.shape as number[]) : undefined;
    if (!shape) return `output ${name} has no shape`;
    if (shape.length !== want.length || shape.some((d, i) => want[i] !== -1 && want[i] !== d)) {
      return `output ${name} has shape [${shape.join(', ')}], expected [${want.map((d) => (d === -1 ? '*' : d)).join(', ')}]`;
    }
    const data = Array.isArray(o.data) ? (o.data as unknown[]).flat(16) : undefined;
    const size = shape.reduce((a, b) => a * b, 1);
    if ((expect.finite || expect.values?.[name]) && (!data || data.length !== size)) return `output ${name} has ${data ? data.length : 'no'} values for shape [${shape.join(', ')}]`;
    if (expect.finite && data) {
      const i = data.findIndex((x) => typeof x !== 'number' || !Number.isFinite(x));
      if (i >= 0) return `output ${name} value ${i} is ${escapeControl(String(JSON.stringify(data[i])).slice(0, 100))}, not a finite number`;
    }
    const values = expect.values?.[name];
    if (values && data) {
      if (values.length !== data.length) return `output ${name} has ${data.length} values, expected ${values.length}`;
      const i = values.findIndex((v, k) => !(typeof data[k] === 'number' && Math.abs((data[k] as number) - v) <= expect.tolerance));
      if (i >= 0) return `output ${name} value ${i} is ${JSON.stringify(data[i])}, expected ${values[i]} ± ${expect.tolerance}`;
    }
  }
  for (const name of Object.keys(expect.values ?? {})) {
    if (!(name in expect.outputs)) return `expect.values names ${JSON.stringify(name)}, which expect.outputs does not`;
  }
  return '';
}

function serverError(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: unknown };
    if (typeof j.error === 'string') return `: ${escapeControl(j.error.slice(0, 300))}`;
  } catch {
    // not JSON
  }
  return text.trim() ? `: ${escapeControl(text.trim().slice(0, 200))}` : '';
}
