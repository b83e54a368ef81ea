/**
 * The values a template can see, the only ways it can reach into them, and
 * the budget that bounds what it can produce.
 *
 * Templates come from the registry, which a site must treat as untrusted, so
 * a template may read *own data properties of plain data* (objects whose
 * prototype is Object.prototype or null, arrays, strings, numbers, booleans,
 * null) and nothing else: no prototype chain, no getters, no functions, no
 * class instances. Everything a template produces is plain data too.
 */
import { PyFloat, fromJs, isNum, numRepr, numValue, floatRepr } from './numbers.ts';

export { PyFloat } from './numbers.ts';

/** Names that lead out of plain data in JavaScript, or in Python for templates written against Jinja. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype', '__defineGetter__', '__defineSetter__', '__lookupGetter__', '__lookupSetter__']);

export function isForbiddenKey(key: string): boolean {
  return FORBIDDEN_KEYS.has(key) || key.startsWith('__');
}

/** A name or attribute that does not exist. Printing it is an error; `default` and `is defined` handle it. */
export class Undefined {
  /**
   * @param hint the expression that is undefined (`models.x.dir`)
   * @param root the first missing piece of it (`models.x`)
   * @param known the names that do exist where `root` was looked up, to point at typos
   */
  constructor(readonly hint: string, readonly root: string = hint, readonly known: readonly string[] = []) {}

  message(): string {
    const known = this.known.length > 0 && this.known.length <= 30 ? ` (known: ${this.known.join(', ')})` : '';
    if (this.root !== this.hint) return `${this.hint} is undefined: ${this.root} does not exist${known}`;
    return `${this.hint} is undefined${known}`;
  }
}

export type Value = string | number | PyFloat | boolean | null | Undefined | Value[] | { [key: string]: Value };
export type PlainObject = { [key: string]: Value };

/** A failure inside evaluation; the renderer positions it at the node being evaluated. */
export class EvalError extends Error {}

export interface Limits {
  /** Characters of output (default 1 MiB). */
  maxOutput: number;
  /** Longest string or printed value any expression may produce (default maxOutput). */
  maxString: number;
  /** Longest list an expression may build (range(), +, *). */
  maxList: number;
  /** Loop iterations over the whole render, nested loops included. */
  maxIterations: number;
  /**
   * Steps of all operations together: a character built, an item copied,
   * visited or compared. Bounds CPU, not just the size of the result.
   */
  maxWork: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxOutput: 1 << 20,
  maxString: 1 << 20,
  maxList: 100_000,
  maxIterations: 100_000,
  maxWork: 16 << 20,
};

export class Budget {
  private work: number;
  private iterations: number;

  constructor(readonly limits: Limits) {
    this.work = limits.maxWork;
    this.iterations = limits.maxIterations;
  }

  /** Account for a string of `n` characters about to be built. */
  string(n: number): void {
    this.stringLength(n);
    this.charge(n);
  }

  stringLength(n: number): void {
    if (n > this.limits.maxString) throw new EvalError(`would build a string of ${n} characters (limit ${this.limits.maxString})`);
  }

  charge(n: number): void {
    this.work -= n;
    if (this.work < 0) throw new EvalError(`template does too much work (more than ${this.limits.maxWork} steps)`);
  }

  list(n: number): void {
    if (n > this.limits.maxList) throw new EvalError(`would build a list of ${n} items (limit ${this.limits.maxList})`);
    this.charge(n);
  }

  iteration(): void {
    if (--this.iterations < 0) throw new EvalError(`loops ran more than ${this.limits.maxIterations} iterations`);
  }
}

export function isUndefined(v: unknown): v is Undefined {
  return v instanceof Undefined;
}

export function isPlainObject(v: unknown): v is PlainObject {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

export function isList(v: unknown): v is Value[] {
  return Array.isArray(v) && Object.getPrototypeOf(v) === Array.prototype;
}

/** The value of own data property `key`, or undefined. Getters are never called. */
function ownData(obj: object, key: string): unknown {
  const d = Object.getOwnPropertyDescriptor(obj, key);
  if (!d || !('value' in d)) return undefined;
  return d.value;
}

/** Reject anything that is not plain data before a template can hold it. */
export function admit(v: unknown, hint: string): Value {
  if (v === undefined) return new Undefined(hint);
  if (typeof v === 'number') return fromJs(v);
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || v instanceof PyFloat) return v;
  if (v instanceof Undefined || isList(v) || isPlainObject(v)) return v as Value;
  throw new EvalError(`${hint} is not plain data (${describeType(v)}) and cannot be used in a template`);
}

/**
 * A string as Python (and so Jinja) sees it: code points, not UTF-16 units,
 * so an emoji is one character and indexing never splits it in two halves.
 */
export function codePoints(s: string, budget: Budget): string[] {
  budget.charge(s.length);
  return Array.from(s);
}

/** `obj.key` / `obj[key]` as a template sees it. */
export function getItem(obj: Value, key: Value, hint: string, budget: Budget): Value {
  const where = typeof key === 'number' ? `${hint}[${key}]` : `${hint}.${typeof key === 'string' ? key : describeType(key)}`;
  if (typeof key === 'string' && isForbiddenKey(key)) throw new EvalError(`access to "${key}" is not allowed`);
  if (isUndefined(obj)) return new Undefined(where, obj.root, obj.known);
  if (isList(obj) || typeof obj === 'string') {
    const idx = typeof key === 'number' ? key : typeof key === 'string' && /^-?\d+$/.test(key) ? Number(key) : NaN;
    if (!Number.isInteger(idx)) return new Undefined(where);
    const seq = typeof obj === 'string' ? codePoints(obj, budget) : obj;
    const n = idx < 0 ? seq.length + idx : idx;
    if (n < 0 || n >= seq.length) return new Undefined(where);
    return typeof obj === 'string' ? seq[n]! : admit(ownData(obj, String(n)), where);
  }
  if (isPlainObject(obj)) {
    if (typeof key !== 'string' && typeof key !== 'number') return new Undefined(where);
    const v = ownData(obj, String(key));
    return v === undefined ? new Undefined(where, where, keysOf(obj)) : admit(v, where);
  }
  return new Undefined(where);
}

/** Own enumerable keys of a plain object, in insertion order. */
export function keysOf(obj: PlainObject): string[] {
  return Object.keys(obj).filter((k) => !isForbiddenKey(k));
}

/** Own entries, each value admitted (never a getter, never a function). */
export function entriesOf(obj: PlainObject, hint: string): Array<[string, Value]> {
  return keysOf(obj).map((k) => [k, admit(ownData(obj, k), `${hint}.${k}`)]);
}

export function truthy(v: Value): boolean {
  if (isUndefined(v) || v === null) return false;
  if (typeof v === 'boolean') return v;
  if (isNum(v)) return numValue(v) !== 0 && !Number.isNaN(numValue(v));
  if (typeof v === 'string') return v.length > 0;
  if (isList(v)) return v.length > 0;
  return keysOf(v).length > 0;
}

export function describeType(v: unknown): string {
  if (v instanceof Undefined) return 'undefined';
  if (v instanceof PyFloat) return 'a float';
  if (v === null) return 'none';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return isPlainObject(v) ? 'a mapping' : 'an object';
  if (typeof v === 'number') return 'an integer';
  if (typeof v === 'boolean') return 'a boolean';
  return `a ${typeof v}`;
}

/** How `{{ v }}` prints a value: Python's str(), as Jinja does. */
export function toStr(v: Value, budget: Budget): string {
  if (typeof v === 'string') return v;
  if (isUndefined(v)) throw new EvalError(`${v.message()}`);
  if (isNum(v) || typeof v === 'boolean' || v === null) return scalarRepr(v);
  const out = new Writer(budget);
  writeRepr(v, out, 0);
  return out.text();
}

function scalarRepr(v: number | PyFloat | boolean | null): string {
  if (v === null) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  return numRepr(v);
}

/** Accumulates serialised text, charging every piece to the budget as it goes. */
class Writer {
  private readonly parts: string[] = [];
  private length = 0;
  constructor(private readonly budget: Budget) {}
  push(s: string): void {
    this.length += s.length;
    this.budget.stringLength(this.length);
    this.budget.charge(s.length);
    this.parts.push(s);
  }
  text(): string {
    return this.parts.join('');
  }
}

const MAX_DEPTH = 64;

function writeRepr(v: Value, out: Writer, depth: number): void {
  if (depth > MAX_DEPTH) throw new EvalError('value is nested too deeply to print');
  if (isUndefined(v)) throw new EvalError(`${v.message()}`);
  if (typeof v === 'string') return out.push(pyQuote(v));
  if (typeof v !== 'object' || v === null || v instanceof PyFloat) return out.push(scalarRepr(v));
  if (isList(v)) {
    out.push('[');
    v.forEach((x, i) => {
      if (i) out.push(', ');
      writeRepr(x, out, depth + 1);
    });
    return out.push(']');
  }
  out.push('{');
  entriesOf(v, '').forEach(([k, x], i) => {
    if (i) out.push(', ');
    out.push(`${pyQuote(k)}: `);
    writeRepr(x, out, depth + 1);
  });
  out.push('}');
}

function pyQuote(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  const body = s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t');
  return q + (q === "'" ? body.replace(/'/g, "\\'") : body) + q;
}

/** JSON with sorted keys (as Jinja's tojson), charged to the budget while it is written. */
export function toJson(v: Value, budget: Budget, indent = 0): string {
  const out = new Writer(budget);
  const pad = (d: number): string => (indent > 0 ? `\n${' '.repeat(indent * d)}` : '');
  const write = (x: Value, depth: number): void => {
    if (depth > MAX_DEPTH) throw new EvalError('value is nested too deeply to serialise');
    if (isUndefined(x)) throw new EvalError(`${x.message()}`);
    if (x === null || typeof x === 'boolean' || typeof x === 'string') return out.push(JSON.stringify(x));
    // As Python's json.dumps: floats keep their ".0", and NaN and infinities are written as JavaScript literals.
    if (typeof x === 'number') return out.push(String(x));
    if (x instanceof PyFloat) return out.push(Number.isNaN(x.value) ? 'NaN' : !Number.isFinite(x.value) ? (x.value > 0 ? 'Infinity' : '-Infinity') : floatRepr(x.value));
    if (isList(x)) {
      if (x.length === 0) return out.push('[]');
      out.push('[');
      x.forEach((y, i) => {
        out.push(`${i ? ',' : ''}${pad(depth + 1) || (i ? ' ' : '')}`);
        write(y, depth + 1);
      });
      return out.push(`${pad(depth)}]`);
    }
    const entries = entriesOf(x, '').sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    if (entries.length === 0) return out.push('{}');
    out.push('{');
    entries.forEach(([k, y], i) => {
      out.push(`${i ? ',' : ''}${pad(depth + 1) || (i ? ' ' : '')}${JSON.stringify(k)}: `);
      write(y, depth + 1);
    });
    out.push(`${pad(depth)}}`);
  };
  write(v, 0);
  return out.text();
}

/** One step, plus the characters two strings may have to be compared over. */
function textCost(a: Value, b: Value): number {
  return 1 + (typeof a === 'string' && typeof b === 'string' ? Math.min(a.length, b.length) : 0);
}

/** Deep equality; every pair of values visited is charged, so comparing big lists in a loop runs out of budget. */
export function equals(a: Value, b: Value, budget: Budget, depth = 0): boolean {
  if (depth > MAX_DEPTH) throw new EvalError('values are nested too deeply to compare');
  budget.charge(textCost(a, b));
  if (isUndefined(a) || isUndefined(b)) return isUndefined(a) && isUndefined(b);
  if (a === b) return true;
  // 1 == 1.0, as in Python; True == 1 too.
  if ((isNum(a) || typeof a === 'boolean') && (isNum(b) || typeof b === 'boolean')) return numOf(a) === numOf(b);
  if (isList(a) && isList(b)) return a.length === b.length && a.every((x, i) => equals(x, b[i]!, budget, depth + 1));
  if (isPlainObject(a) && isPlainObject(b)) {
    const ka = keysOf(a);
    const kb = keysOf(b);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && equals(a[k]!, b[k]!, budget, depth + 1));
  }
  return false;
}

function numOf(v: number | PyFloat | boolean): number {
  return typeof v === 'boolean' ? Number(v) : numValue(v);
}

/** Ordering for <, >, sort: numbers with numbers, strings with strings, lists item by item. */
export function compareValues(a: Value, b: Value, budget: Budget, depth = 0): number {
  if (depth > MAX_DEPTH) throw new EvalError('values are nested too deeply to compare');
  budget.charge(textCost(a, b));
  if ((isNum(a) || typeof a === 'boolean') && (isNum(b) || typeof b === 'boolean')) {
    const x = numOf(a);
    const y = numOf(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (isList(a) && isList(b)) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      const c = compareValues(a[i]!, b[i]!, budget, depth + 1);
      if (c !== 0) return c;
    }
    return a.length - b.length;
  }
  if (isUndefined(a)) throw new EvalError(`${a.message()}`);
  if (isUndefined(b)) throw new EvalError(`${b.message()}`);
  throw new EvalError(`cannot compare ${describeType(a)} with ${describeType(b)}`);
}

/** What `for x in v` iterates: a list's items, a mapping's keys, a string's characters (each one charged). */
export function iterate(v: Value, hint: string, budget: Budget): Value[] {
  if (isList(v)) {
    budget.charge(v.length);
    return v.map((x, i) => admit(x, `${hint}[${i}]`));
  }
  if (typeof v === 'string') {
    budget.charge(v.length);
    return [...v];
  }
  if (isPlainObject(v)) {
    const keys = keysOf(v);
    budget.charge(keys.length);
    return keys;
  }
  if (isUndefined(v)) throw new EvalError(`${v.message()}; it cannot be iterated`);
  throw new EvalError(`${hint} is ${describeType(v)}, which cannot be iterated`);
}
