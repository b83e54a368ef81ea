/**
 * Filters and tests: the only code a template can invoke. Each takes plain
 * data and returns plain data; anything that builds strings or lists charges
 * the render's budget first, so no filter can be used to exhaust memory.
 */
import { PyFloat, arith, isFloat, isNum, numValue, roundHalfEven } from './numbers.ts';
import { posix } from 'node:path';
import { stringify as yamlStringify } from 'yaml';
import { suggest } from '../registry/zod-problems.ts';
import { EvalError, Undefined, codePoints, compareValues, describeType, entriesOf, equals, isList, isPlainObject, isUndefined, keysOf, toJson, truthy, type Value } from './values.ts';
import { arg, bucketKey, defined, needInt, needList, needString, pluck, sortKey, str, toFloat, toInt, type Filter, type FilterCall } from './filter-args.ts';
import { lookupTest } from './tests.ts';

export { contains, hasTest, lookupTest, unknownTest, TEST_NAMES } from './tests.ts';
export type { FilterCall } from './filter-args.ts';

const FILTERS: Record<string, Filter> = {
  default(v, c) {
    const dflt = arg(c, 0, 'default_value', '');
    const boolean = truthy(arg(c, 1, 'boolean', false));
    if (isUndefined(v) || (boolean && !truthy(v))) return dflt;
    return v;
  },
  mandatory(v, c) {
    if (isUndefined(v)) throw new EvalError(`${truthy(arg(c, 0, 'msg', '')) ? str(arg(c, 0, 'msg', ''), 'msg', c.budget) : `${v.message()} (mandatory)`}`);
    return v;
  },
  join(v, c) {
    const items = needList(v, c.hint, c.budget);
    const sep = str(arg(c, 0, 'd', ''), 'separator', c.budget);
    const attribute = arg(c, 1, 'attribute', null);
    const parts = items.map((x) => str(typeof attribute === 'string' ? pluck(x, attribute, c.budget) : x, 'item', c.budget));
    c.budget.string(parts.reduce((n, p) => n + p.length, 0) + sep.length * Math.max(0, parts.length - 1));
    return parts.join(sep);
  },
  upper: (v, c) => str(v, c.hint, c.budget).toUpperCase(),
  lower: (v, c) => str(v, c.hint, c.budget).toLowerCase(),
  capitalize(v, c) {
    const s = str(v, c.hint, c.budget);
    return s.charAt(0).toUpperCase() + s.slice(1).toLowerCase();
  },
  title: (v, c) => str(v, c.hint, c.budget).replace(/[A-Za-z0-9]+/g, (w) => w.charAt(0).toUpperCase() + w.slice(1).toLowerCase()),
  trim(v, c) {
    const s = str(v, c.hint, c.budget);
    const chars = arg(c, 0, 'chars', null);
    if (chars === null) return s.trim();
    const set = new Set(needString(chars, 'chars'));
    let a = 0;
    let b = s.length;
    while (a < b && set.has(s[a]!)) a++;
    while (b > a && set.has(s[b - 1]!)) b--;
    return s.slice(a, b);
  },
  replace(v, c) {
    const s = str(v, c.hint, c.budget);
    const old = str(arg(c, 0, 'old', ''), 'old', c.budget);
    const neu = str(arg(c, 1, 'new', ''), 'new', c.budget);
    const countArg = arg(c, 2, 'count', null);
    const count = countArg === null ? Infinity : needInt(countArg, 'count');
    // Count the replacements first so the result's size is charged before it exists.
    const pieces = old === '' ? [...s] : s.split(old);
    const n = Math.min(old === '' ? s.length + 1 : pieces.length - 1, count);
    c.budget.string(s.length + n * (neu.length - old.length));
    if (old === '') {
      // Python inserts `new` between characters and at both ends.
      const out: string[] = [];
      let done = 0;
      for (let i = 0; i <= s.length; i++) {
        if (done < n) {
          out.push(neu);
          done++;
        }
        if (i < s.length) out.push(s[i]!);
      }
      return out.join('');
    }
    if (n === pieces.length - 1) return pieces.join(neu);
    return pieces.slice(0, n + 1).join(neu) + old + pieces.slice(n + 1).join(old);
  },
  int: (v, c) => toInt(v, arg(c, 0, 'default', 0), needInt(arg(c, 1, 'base', 10), 'base')),
  float: (v, c) => toFloat(v, arg(c, 0, 'default', new PyFloat(0))),
  bool(v) {
    if (typeof v === 'string') return ['yes', 'on', '1', 'true', 't', 'y'].includes(v.trim().toLowerCase());
    return truthy(v);
  },
  string: (v, c) => str(v, c.hint, c.budget),
  length(v, c) {
    const x = defined(v, c.hint);
    if (typeof x === 'string') return codePoints(x, c.budget).length;
    if (isList(x)) return x.length;
    if (isPlainObject(x)) return keysOf(x).length;
    throw new EvalError(`${c.hint} is ${describeType(x)}, which has no length`);
  },
  basename: (v, c) => posix.basename(str(v, c.hint, c.budget)),
  dirname: (v, c) => posix.dirname(str(v, c.hint, c.budget)),
  tojson: (v, c) => toJson(v, c.budget, needInt(arg(c, 0, 'indent', 0) ?? 0, 'indent')),
  to_json: (v, c) => toJson(v, c.budget, 0),
  to_nice_json: (v, c) => toJson(v, c.budget, needInt(arg(c, 0, 'indent', 4), 'indent')),
  to_yaml(v, c) {
    // Serialise through JSON first: it is budgeted and proves the value is plain data.
    const json = toJson(v, c.budget);
    const out = yamlStringify(JSON.parse(json), { indent: needInt(arg(c, 0, 'indent', 2), 'indent') });
    c.budget.string(out.length);
    return out;
  },
  first(v, c) {
    const items = isList(v) ? v : needList(v, c.hint, c.budget);
    return items.length ? items[0]! : new Undefined(`${c.hint}|first (empty)`);
  },
  last(v, c) {
    const items = isList(v) ? v : needList(v, c.hint, c.budget);
    return items.length ? items[items.length - 1]! : new Undefined(`${c.hint}|last (empty)`);
  },
  sort(v, c) {
    const items = [...needList(v, c.hint, c.budget)];
    const reverse = truthy(arg(c, 0, 'reverse', false));
    const caseSensitive = truthy(arg(c, 1, 'case_sensitive', false));
    const attribute = arg(c, 2, 'attribute', null);
    const key = (x: Value): Value => sortKey(typeof attribute === 'string' ? pluck(x, attribute, c.budget) : x, caseSensitive, c.budget);
    items.sort((a, b) => compareValues(key(a), key(b), c.budget));
    if (reverse) items.reverse();
    return items;
  },
  unique(v, c) {
    // Jinja: case-insensitive unless asked, optionally by attribute; the first of each kind is kept.
    const caseSensitive = truthy(arg(c, 0, 'case_sensitive', false));
    const attribute = arg(c, 1, 'attribute', null);
    const out: Value[] = [];
    // Bucketed by a cheap key, so this is linear, not a comparison of every pair.
    const buckets = new Map<string, Value[]>();
    for (const x of needList(v, c.hint, c.budget)) {
      const k = sortKey(typeof attribute === 'string' ? pluck(x, attribute, c.budget) : x, caseSensitive, c.budget);
      const bk = bucketKey(k, c.budget);
      const bucket = buckets.get(bk) ?? [];
      if (bucket.some((y) => equals(k, y, c.budget))) continue;
      if (bucket.length === 0) buckets.set(bk, bucket);
      bucket.push(k);
      out.push(x);
    }
    return out;
  },
  reverse(v, c) {
    if (typeof v === 'string') return [...v].reverse().join('');
    return [...needList(v, c.hint, c.budget)].reverse();
  },
  list: (v, c) => [...needList(v, c.hint, c.budget)],
  items(v, c) {
    const x = defined(v, c.hint);
    if (!isPlainObject(x)) throw new EvalError(`${c.hint} is ${describeType(x)}, not a mapping`);
    return entriesOf(x, c.hint).map(([k, y]) => [k, y]);
  },
  dictsort(v, c) {
    const x = defined(v, c.hint);
    if (!isPlainObject(x)) throw new EvalError(`${c.hint} is ${describeType(x)}, not a mapping`);
    const caseSensitive = truthy(arg(c, 0, 'case_sensitive', false));
    const by = arg(c, 1, 'by', 'key');
    const reverse = truthy(arg(c, 2, 'reverse', false));
    const idx = by === 'value' ? 1 : 0;
    const entries = entriesOf(x, c.hint);
    c.budget.charge(entries.length);
    const out = entries.sort((a, b) => compareValues(sortKey(a[idx]!, caseSensitive, c.budget), sortKey(b[idx]!, caseSensitive, c.budget), c.budget));
    if (reverse) out.reverse();
    return out.map(([k, y]) => [k, y]);
  },
  abs(v, c) {
    if (!isNum(v)) throw new EvalError(`${c.hint} is ${describeType(v)}, not a number`);
    return isFloat(v) ? new PyFloat(Math.abs(v.value)) : Math.abs(v);
  },
  /** As Jinja's: Python's round() for "common" (an integer stays one, a float is rounded half to even), else a float. */
  round(v, c) {
    if (!isNum(v)) throw new EvalError(`${c.hint} is ${describeType(v)}, not a number`);
    const precision = needInt(arg(c, 0, 'precision', 0), 'precision');
    const method = arg(c, 1, 'method', 'common');
    const x = numValue(v);
    const f = 10 ** precision;
    if (method === 'ceil') return new PyFloat(Math.ceil(x * f) / f);
    if (method === 'floor') return new PyFloat(Math.floor(x * f) / f);
    if (method !== 'common') throw new EvalError('round method must be "common", "ceil" or "floor"');
    if (isFloat(v)) return new PyFloat(roundHalfEven(x, precision));
    return precision >= 0 ? x : roundHalfEven(x, precision);
  },
  min(v, c) {
    const items = needList(v, c.hint, c.budget);
    return items.length ? items.reduce((a, b) => (compareValues(a, b, c.budget) <= 0 ? a : b)) : new Undefined(`${c.hint}|min (empty)`);
  },
  max(v, c) {
    const items = needList(v, c.hint, c.budget);
    return items.length ? items.reduce((a, b) => (compareValues(a, b, c.budget) >= 0 ? a : b)) : new Undefined(`${c.hint}|max (empty)`);
  },
  sum(v, c) {
    const attribute = arg(c, 0, 'attribute', null);
    let total = arg(c, 1, 'start', 0);
    for (const x of needList(v, c.hint, c.budget)) {
      const y = typeof attribute === 'string' ? pluck(x, attribute, c.budget) : x;
      if (!isNum(y) || !isNum(total)) throw new EvalError(`sum needs numbers, got ${describeType(y)}`);
      total = arith('+', total, y);
    }
    return total;
  },
  map(v, c) {
    const items = needList(v, c.hint, c.budget);
    const attribute = c.kwargs.attribute;
    if (typeof attribute === 'string') {
      const dflt = c.kwargs.default;
      return items.map((x) => {
        const y = pluck(x, attribute, c.budget);
        return isUndefined(y) && dflt !== undefined ? dflt : y;
      });
    }
    const name = c.args[0];
    if (typeof name !== 'string') throw new EvalError('map needs a filter name or attribute="…"');
    const f = FILTERS[name];
    if (!f || !Object.hasOwn(FILTERS, name)) throw new EvalError(unknownFilter(name));
    const rest: FilterCall = { ...c, args: c.args.slice(1), kwargs: {} };
    return items.map((x) => f(x, rest));
  },
  selectattr: (v, c) => selectBy(v, c, true),
  rejectattr: (v, c) => selectBy(v, c, false),
  select: (v, c) => selectItems(v, c, true),
  reject: (v, c) => selectItems(v, c, false),
  indent(v, c) {
    const s = str(v, c.hint, c.budget);
    const w = arg(c, 0, 'width', 4);
    const width = typeof w === 'string' ? w.length : needInt(w, 'width');
    c.budget.stringLength(width);
    const pad = typeof w === 'string' ? w : ' '.repeat(width);
    const first = truthy(arg(c, 1, 'first', false));
    const blank = truthy(arg(c, 2, 'blank', false));
    const lines = s.split('\n');
    c.budget.string(s.length + pad.length * lines.length);
    return lines.map((line, i) => ((i === 0 && !first) || (!blank && line.trim() === '') ? line : pad + line)).join('\n');
  },
  split(v, c) {
    const s = str(v, c.hint, c.budget);
    const sep = arg(c, 0, 'sep', null);
    const parts = sep === null ? s.trim().split(/\s+/).filter((p) => p !== '') : s.split(needString(sep, 'separator'));
    c.budget.list(parts.length);
    return parts;
  },
  quote(v, c) {
    const s = str(v, c.hint, c.budget);
    c.budget.string(s.length * 4 + 2);
    return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'"'"'`)}'`;
  },
};
FILTERS.d = FILTERS.default!;
FILTERS.count = FILTERS.length!;

function selectBy(v: Value, c: FilterCall, keep: boolean): Value {
  const items = needList(v, c.hint, c.budget);
  const attribute = c.args[0];
  if (typeof attribute !== 'string') throw new EvalError(`${keep ? 'selectattr' : 'rejectattr'} needs an attribute name`);
  const testName = c.args[1];
  const test = testName === undefined ? null : lookupTest(needString(testName, 'test name'));
  return items.filter((x) => {
    const y = pluck(x, attribute, c.budget);
    return (test ? test(y, c.args.slice(2), c.budget) : truthy(y)) === keep;
  });
}

function selectItems(v: Value, c: FilterCall, keep: boolean): Value {
  const items = needList(v, c.hint, c.budget);
  const testName = c.args[0];
  const test = testName === undefined ? null : lookupTest(needString(testName, 'test name'));
  return items.filter((x) => (test ? test(x, c.args.slice(1), c.budget) : truthy(x)) === keep);
}

export function lookupFilter(name: string): Filter | null {
  return Object.hasOwn(FILTERS, name) ? FILTERS[name]! : null;
}

/** `unknown filter "x"`, with the nearest known filter when there is one within two edits. */
export function unknownFilter(name: string): string {
  return `unknown filter "${name}"${suggest(name, Object.keys(FILTERS))}`;
}

export const FILTER_NAMES = Object.keys(FILTERS).sort();
