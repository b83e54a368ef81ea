/**
 * Telling a model server that its repository changed, and asking it whether
 * the version is loaded: OVMS `POST /v1/config/reload`, Triton (explicit
 * model control) `POST /v2/repository/models/<m>/load`, then KServe v2
 * readiness. `fetch` and the clock are passed in; every request is bounded.
 */
import { errorMessage } from '../errors.ts';
import { redactUrl } from '../util/redact.ts';
import { escapeControl } from '../util/escape.ts';
import type { ServingKind } from './view.ts';

export interface RuntimeDeps {
  fetch: typeof fetch;
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  signal?: AbortSignal;
}

export interface Answer {
  ok: boolean;
  /** Why not (or "ok"), with the server's own error text when it gave one. */
  message: string;
}

const BODY_LIMIT = 4096;

/** One request, its answer's status and the start of its body. */
async function call(deps: RuntimeDeps, url: string, method: string, timeoutMs: number): Promise<{ status: number; body: string } | { error: string }> {
  const timeout = AbortSignal.timeout(Math.max(1, timeoutMs));
  const signal = deps.signal ? AbortSignal.any([deps.signal, timeout]) : timeout;
  try {
    const res = await deps.fetch(url, { method, signal, redirect: 'manual', ...(method === 'POST' ? { headers: { 'content-type': 'application/json' }, body: '{}' } : {}) });
    const body = (await res.text().catch(() => '')).slice(0, BODY_LIMIT);
    return { status: res.status, body };
  } catch (err) {
    return { error: timeout.aborted ? `timed out after ${timeoutMs} ms` : errorMessage(err) };
  }
}

/** The server's error text (KServe and OVMS answer `{"error": "..."}`), bounded and with control characters escaped: it is untrusted and goes into reports. */
function serverError(body: string): string {
  try {
    const j = JSON.parse(body) as { error?: unknown };
    if (typeof j.error === 'string') return escapeControl(j.error.slice(0, 500));
  } catch {
    // not JSON
  }
  return escapeControl(body.trim().slice(0, 200));
}

/** Tell the server to re-read what the view says for `model`. */
export async function tellRuntime(kind: ServingKind, base: string, model: string, timeoutMs: number, deps: RuntimeDeps): Promise<Answer> {
  const url = kind === 'ovms' ? `${base}/v1/config/reload` : `${base}/v2/repository/models/${encodeURIComponent(model)}/load`;
  const r = await call(deps, url, 'POST', timeoutMs);
  const what = `POST ${redactUrl(url)}`;
  if ('error' in r) return { ok: false, message: `${what}: ${r.error}` };
  if (r.status >= 200 && r.status < 300) return { ok: true, message: 'ok' };
  const why = serverError(r.body);
  return { ok: false, message: `${what} answered ${r.status}${why ? `: ${why}` : ''}` };
}

/**
 * Ask for readiness until it says ready or `timeoutMs` runs out. `n`
 * given: that exact version (`/versions/<n>/ready`), so the old version
 * still being up does not pass for the new one.
 */
export async function waitReady(base: string, model: string, n: number | undefined, timeoutMs: number, intervalMs: number, deps: RuntimeDeps): Promise<Answer & { tries: number }> {
  const url = `${base}/v2/models/${encodeURIComponent(model)}${n === undefined ? '' : `/versions/${n}`}/ready`;
  const deadline = deps.now() + timeoutMs;
  let tries = 0;
  let last = '';
  for (;;) {
    tries++;
    const r = await call(deps, url, 'GET', Math.max(250, deadline - deps.now()));
    if (!('error' in r) && r.status >= 200 && r.status < 300) return { ok: true, message: 'ready', tries };
    last = 'error' in r ? r.error : `answered ${r.status}${serverError(r.body) ? `: ${serverError(r.body)}` : ''}`;
    const left = deadline - deps.now();
    if (left <= 0 || deps.signal?.aborted) break;
    try {
      await deps.sleep(Math.min(intervalMs, left), deps.signal);
    } catch {
      break;
    }
  }
  return { ok: false, message: `GET ${redactUrl(url)} ${last} (${tries} ${tries === 1 ? 'try' : 'tries'} in ${(timeoutMs / 1000).toFixed(0)}s)`, tries };
}
