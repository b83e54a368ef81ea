/**
 * The shape of a site's status report, checked before the hub keeps it.
 * Reports come from site tokens, which are as untrusted as any client: the
 * fields the hub and `status --hub` read must have the types they expect and
 * bounded sizes, and the short identifiers (health, commit, model names,
 * versions) no control characters, so a report cannot forge what an
 * operator's terminal shows. Free text (errors, details) may hold anything
 * printable; every printer escapes control characters anyway
 * (src/util/escape.ts). Unknown fields are kept: agents of a newer version
 * may send more.
 */
import { hasControl } from '../util/escape.ts';

/** The longest string anywhere in a report: an error message with its context fits easily. */
export const MAX_REPORT_STRING = 64 << 10;
/** Models one site can report. */
export const MAX_REPORT_MODELS = 1000;
const MAX_ID = 256;

type Check = (v: unknown, at: string) => string | null;

const optional = (check: Check): Check => (v, at) => (v === undefined || v === null ? null : check(v, at));
const str = (max: number, ids = false): Check => (v, at) => {
  if (typeof v !== 'string') return `${at} must be a string`;
  if (v.length > max) return `${at} is longer than ${max} characters`;
  if (ids && hasControl(v)) return `${at} must not contain control characters`;
  return null;
};
const id = str(MAX_ID, true);
const num: Check = (v, at) => (typeof v === 'number' && Number.isFinite(v) ? null : `${at} must be a number`);
const obj = (fields: Record<string, Check>): Check => (v, at) => {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return `${at} must be an object`;
  for (const [k, check] of Object.entries(fields)) {
    const p = check((v as Record<string, unknown>)[k], `${at}.${k}`);
    if (p) return p;
  }
  return null;
};
const list = (item: Check, max: number): Check => (v, at) => {
  if (!Array.isArray(v)) return `${at} must be a list`;
  if (v.length > max) return `${at} has ${v.length} entries (at most ${max})`;
  for (const [i, x] of v.entries()) {
    const p = item(x, `${at}[${i}]`);
    if (p) return p;
  }
  return null;
};

const modelRef = obj({ model: id, version: optional(id) });
const REPORT = obj({
  health: optional(id),
  phase: optional(id),
  commit: optional(id),
  appliedCommit: optional(id),
  lastError: optional(str(MAX_REPORT_STRING)),
  stalenessSeconds: optional(num),
  models: optional(list(obj({ model: id, declared: optional(id), desired: optional(id), active: optional(id), outcome: optional(id), drift: optional(str(MAX_REPORT_STRING)) }), MAX_REPORT_MODELS)),
  lastPass: optional(obj({ status: optional(id), conflicts: optional(list(modelRef, MAX_REPORT_MODELS)), degraded: optional(list(modelRef, MAX_REPORT_MODELS)) })),
});

/** Why a parsed report is refused (the first problem, naming the field), or null. */
export function reportShapeProblem(report: Record<string, unknown>): string | null {
  const p = REPORT(report, 'report');
  if (p) return p;
  return longString(report, 'report', 0);
}

/** Any string longer than MAX_REPORT_STRING, however deep (the depth is bounded before this runs). */
function longString(v: unknown, at: string, depth: number): string | null {
  if (typeof v === 'string') return v.length > MAX_REPORT_STRING ? `${at} is longer than ${MAX_REPORT_STRING} characters` : null;
  if (!v || typeof v !== 'object' || depth > 100) return null;
  for (const [k, x] of Array.isArray(v) ? v.entries() : Object.entries(v)) {
    const p = longString(x, `${at}${Array.isArray(v) ? `[${k}]` : `.${String(k)}`}`, depth + 1);
    if (p) return p;
  }
  return null;
}
