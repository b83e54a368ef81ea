/**
 * What filters share: how a call's arguments are read and checked, and the
 * conversions (int, float, sort keys) several filters use.
 */
import { PyFloat, isNum, numValue } from './numbers.ts';
import { Budget, EvalError, describeType, getItem, isList, isPlainObject, isUndefined, iterate, keysOf, toStr, type Value } from './values.ts';

export interface FilterCall {
  args: Value[];
  kwargs: Record<string, Value>;
  budget: Budget;
  /** For messages: what the filter was applied to. */
  hint: string;
}

export type Filter = (value: Value, call: FilterCall) => Value;

/** Positional-or-keyword argument `i` named `name`, with a default. */
export function arg(call: FilterCall, i: number, name: string, dflt: Value): Value {
  if (i < call.args.length) return call.args[i]!;
  if (Object.hasOwn(call.kwargs, name)) return call.kwargs[name]!;
  return dflt;
}

export function str(v: Value, what: string, budget: Budget): string {
  void what;
  return toStr(v, budget);
}

export function needString(v: Value, what: string): string {
  if (typeof v !== 'string') throw new EvalError(`${what} must be a string, not ${describeType(v)}`);
  return v;
}

/**
 * The items a list filter works through. Each is charged here, once, so a
 * filter over a big list inside a loop runs out of budget instead of
 * spinning (sort and unique charge their comparisons on top).
 */
export function needList(v: Value, what: string, budget: Budget): Value[] {
  if (isUndefined(v)) throw new EvalError(`${v.message()}`);
  if (isList(v)) {
    budget.charge(v.length);
    return v;
  }
  if (typeof v === 'string' || isPlainObject(v)) return iterate(v, what, budget);
  throw new EvalError(`${what} is ${describeType(v)}, not a list`);
}

export function needInt(v: Value, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new EvalError(`${what} must be an integer, not ${describeType(v)}`);
  return v;
}

export function defined(v: Value, what: string): Value {
  if (isUndefined(v)) throw new EvalError(`${v.message()}`);
  void what;
  return v;
}

/** An attribute path like "name" or "files.0.size", as Jinja's attribute= arguments take; each step charged. */
export function pluck(item: Value, attribute: string, budget: Budget): Value {
  let cur = item;
  const parts = attribute.split('.');
  budget.charge(parts.length);
  for (const part of parts) cur = getItem(cur, /^\d+$/.test(part) ? Number(part) : part, 'item', budget);
  return cur;
}

/** A key under which equal values always meet (unequal ones may share it; `equals` decides). */
export function bucketKey(v: Value, budget: Budget): string {
  // Hashing a key costs about a step per character, and a map insert far more than one step.
  budget.charge(UNIQUE_ITEM_COST + (typeof v === 'string' ? v.length : 0));
  // 1, 1.0 and true are equal in Python, so they must meet.
  if (isNum(v) || typeof v === 'boolean') return `num:${typeof v === 'boolean' ? Number(v) : numValue(v)}`;
  if (v === null || typeof v !== 'object') return `${typeof v}:${String(v)}`;
  if (isList(v)) return `list:${v.length}`;
  if (isUndefined(v)) return 'undefined';
  return `map:${keysOf(v).length}`;
}

/** What unique() pays per item beyond its key's characters, measured against the other steps. */
const UNIQUE_ITEM_COST = 16;

export function sortKey(v: Value, caseSensitive: boolean, budget: Budget): Value {
  if (caseSensitive || typeof v !== 'string') return v;
  budget.charge(v.length);
  return v.toLowerCase();
}

export function toInt(v: Value, dflt: Value, base: number): Value {
  if (isNum(v)) return Number.isFinite(numValue(v)) ? Math.trunc(numValue(v)) : dflt;
  if (typeof v === 'boolean') return Number(v);
  if (typeof v === 'string') {
    const s = v.trim().replace(/_/g, '');
    if (base === 10 && /^[+-]?\d+$/.test(s)) return Number(s);
    if (base !== 10) {
      const body = s.replace(/^0[xob]/i, '');
      const n = parseInt(body, base);
      return Number.isNaN(n) ? dflt : n;
    }
    const f = Number(s);
    return s !== '' && Number.isFinite(f) ? Math.trunc(f) : dflt;
  }
  return dflt;
}

/** Jinja's float(): always a float; what cannot be read as one gives the default (0.0). */
export function toFloat(v: Value, dflt: Value): Value {
  if (isNum(v)) return new PyFloat(numValue(v));
  if (typeof v === 'boolean') return new PyFloat(Number(v));
  if (typeof v === 'string' && v.trim() !== '') {
    const t = v.trim().replace(/_/g, '');
    const f = /^[+-]?(inf(inity)?|nan)$/i.test(t) ? Number(t.replace(/inf(inity)?/i, 'Infinity').replace(/nan/i, 'NaN')) : Number(t);
    return Number.isNaN(f) && !/nan/i.test(t) ? dflt : new PyFloat(f);
  }
  return dflt;
}
