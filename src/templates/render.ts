/**
 * Evaluates a compiled template against plain data. There is no `eval`, no
 * host function reachable from a template, and every loop, string and list
 * is charged to a budget, so a hostile template can fail but cannot escape,
 * hang or exhaust memory.
 */
import type { CompareOp, Expr, Stmt } from './ast.ts';
import { arith, isNum, negate, type ArithOp, type Num } from './numbers.ts';
import { TemplateError } from './errors.ts';
import { contains, lookupFilter, lookupTest, unknownFilter } from './filters.ts';
import {
  Budget, EvalError, Undefined, codePoints, compareValues, describeType, equals, getItem, isForbiddenKey, isList, isPlainObject,
  isUndefined, iterate, keysOf, toStr, truthy, type Limits, type PlainObject, type Value,
} from './values.ts';

export interface CompiledTemplate {
  readonly name: string;
  readonly body: readonly Stmt[];
  position(pos: number): { line: number; col: number };
}

class Scope {
  private readonly vars = new Map<string, Value>();
  constructor(private readonly parent: Scope | null, readonly root: PlainObject) {}

  lookup(name: string): Value {
    for (let s: Scope | null = this; s; s = s.parent) if (s.vars.has(name)) return s.vars.get(name)!;
    if (Object.hasOwn(this.root, name)) return this.root[name]!;
    return new Undefined(name, name, keysOf(this.root));
  }

  set(name: string, value: Value): void {
    this.vars.set(name, value);
  }

  child(): Scope {
    return new Scope(this, this.root);
  }
}

/** A position-carrying failure inside evaluation. */
class PositionedError extends Error {
  constructor(readonly pos: number, message: string) {
    super(message);
  }
}

export function render(t: CompiledTemplate, context: unknown, limits: Limits): string {
  const budget = new Budget(limits);
  let root: PlainObject;
  try {
    root = toPlain(context, 'context', 0, { nodes: 0 }) as PlainObject;
    if (!isPlainObject(root)) throw new EvalError('the template context must be a mapping');
  } catch (err) {
    if (err instanceof EvalError) throw new TemplateError(t.name, 1, 1, `bad context: ${err.message}`);
    throw err;
  }
  const r = new Renderer(budget, limits);
  try {
    r.exec(t.body, new Scope(null, root));
  } catch (err) {
    if (err instanceof PositionedError) {
      const { line, col } = t.position(err.pos);
      throw new TemplateError(t.name, line, col, err.message);
    }
    if (err instanceof RangeError) throw new TemplateError(t.name, 1, 1, `rendering failed: ${err.message}`);
    throw err;
  }
  return r.output();
}

/** Copy the caller's context into plain data, so nothing else is ever reachable from the template. */
function toPlain(v: unknown, hint: string, depth: number, count: { nodes: number }): Value {
  if (++count.nodes > 1_000_000) throw new EvalError('is too large (more than a million values)');
  if (depth > 32) throw new EvalError(`${hint} is nested too deeply`);
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || typeof v === 'number') return v;
  if (v === undefined) return null;
  if (Array.isArray(v)) return v.map((x, i) => toPlain(x, `${hint}[${i}]`, depth + 1, count));
  if (isPlainObject(v)) {
    const out: PlainObject = Object.create(null) as PlainObject;
    for (const k of Object.keys(v)) {
      if (isForbiddenKey(k)) continue;
      const d = Object.getOwnPropertyDescriptor(v, k)!;
      if (!('value' in d)) throw new EvalError(`${hint}.${k} is an accessor, not data`);
      out[k] = toPlain(d.value, `${hint}.${k}`, depth + 1, count);
    }
    return out;
  }
  throw new EvalError(`${hint} is ${describeType(v)}, not plain data`);
}

class Renderer {
  private readonly parts: string[] = [];
  private length = 0;

  constructor(private readonly budget: Budget, private readonly limits: Limits) {}

  output(): string {
    return this.parts.join('');
  }

  private emit(s: string, pos: number): void {
    this.length += s.length;
    if (this.length > this.limits.maxOutput) throw new PositionedError(pos, `output is larger than ${this.limits.maxOutput} characters`);
    this.parts.push(s);
  }

  exec(stmts: readonly Stmt[], scope: Scope): void {
    for (const s of stmts) {
      switch (s.t) {
        case 'text':
          this.emit(s.value, 0);
          break;
        case 'output':
          this.emit(this.guard(s.pos, () => toStr(this.eval(s.expr, scope), this.budget)), s.pos);
          break;
        case 'if': {
          const branch = s.branches.find((b) => truthy(this.eval(b.cond, scope)));
          if (branch) this.exec(branch.body, scope);
          else if (s.otherwise) this.exec(s.otherwise, scope);
          break;
        }
        case 'for':
          this.forLoop(s, scope);
          break;
        case 'set':
          scope.set(s.target, this.eval(s.expr, scope));
          break;
      }
    }
  }

  private forLoop(s: Extract<Stmt, { t: 'for' }>, scope: Scope): void {
    const iterable = this.eval(s.iter, scope);
    let items = this.guard(s.iter.pos, () => iterate(iterable, hintOf(s.iter), this.budget));
    const bind = (target: Scope, item: Value): void => {
      if (s.targets.length === 1) {
        target.set(s.targets[0]!, item);
        return;
      }
      if (!isList(item) || item.length !== s.targets.length) {
        throw new PositionedError(s.pos, `cannot unpack ${describeType(item)} into ${s.targets.length} names (${s.targets.join(', ')})`);
      }
      s.targets.forEach((n, i) => target.set(n, item[i]!));
    };
    if (s.filter) {
      const filter = s.filter;
      items = items.filter((item) => {
        this.guard(s.pos, () => this.budget.iteration());
        const inner = scope.child();
        bind(inner, item);
        return truthy(this.eval(filter, inner));
      });
    }
    if (items.length === 0) {
      if (s.otherwise) this.exec(s.otherwise, scope);
      return;
    }
    const n = items.length;
    items.forEach((item, i) => {
      this.guard(s.pos, () => this.budget.iteration());
      const inner = scope.child();
      bind(inner, item);
      const loop: PlainObject = Object.create(null) as PlainObject;
      Object.assign(loop, {
        index: i + 1, index0: i, revindex: n - i, revindex0: n - i - 1, first: i === 0, last: i === n - 1, length: n,
        previtem: i > 0 ? items[i - 1]! : new Undefined('loop.previtem'), nextitem: i < n - 1 ? items[i + 1]! : new Undefined('loop.nextitem'),
      });
      inner.set('loop', loop);
      this.exec(s.body, inner);
    });
  }

  /** Run `fn`, turning an EvalError into one positioned at `pos`. */
  private guard<T>(pos: number, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof EvalError) throw new PositionedError(pos, err.message);
      throw err;
    }
  }

  eval(e: Expr, scope: Scope): Value {
    return this.guard(e.pos, () => this.evalInner(e, scope));
  }

  private evalInner(e: Expr, scope: Scope): Value {
    switch (e.t) {
      case 'literal':
        return e.value;
      case 'name':
        return scope.lookup(e.name);
      case 'attr': {
        const obj = this.eval(e.obj, scope);
        return getItem(obj, /^\d+$/.test(e.name) && isList(obj) ? Number(e.name) : e.name, hintOf(e.obj), this.budget);
      }
      case 'index': {
        const obj = this.eval(e.obj, scope);
        const key = this.eval(e.index, scope);
        if (isUndefined(key)) throw new EvalError(key.message());
        return getItem(obj, key, hintOf(e.obj), this.budget);
      }
      case 'slice':
        return this.slice(e, scope);
      case 'list': {
        this.budget.list(e.items.length);
        return e.items.map((x) => this.eval(x, scope));
      }
      case 'dict': {
        const out: PlainObject = Object.create(null) as PlainObject;
        for (const { key, value } of e.entries) {
          const k = this.eval(key, scope);
          if (typeof k !== 'string' && typeof k !== 'number') throw new PositionedError(key.pos, `mapping keys must be strings or numbers, not ${describeType(k)}`);
          const ks = String(k);
          if (isForbiddenKey(ks)) throw new PositionedError(key.pos, `"${ks}" cannot be used as a key`);
          out[ks] = this.eval(value, scope);
        }
        return out;
      }
      case 'unary': {
        const v = this.eval(e.expr, scope);
        if (e.op === 'not') return !truthy(v);
        if (!isNum(v)) throw new EvalError(`unary "${e.op}" needs a number, not ${describeType(v)}`);
        return e.op === '-' ? negate(v) : v;
      }
      case 'logic': {
        const left = this.eval(e.left, scope);
        if (e.op === 'and') return truthy(left) ? this.eval(e.right, scope) : left;
        return truthy(left) ? left : this.eval(e.right, scope);
      }
      case 'binary':
        return this.binary(e.op, this.eval(e.left, scope), this.eval(e.right, scope));
      case 'compare': {
        let left = this.eval(e.first, scope);
        for (const { op, expr, pos } of e.rest) {
          const right = this.eval(expr, scope);
          if (!this.guard(pos, () => compare(op, left, right, this.budget))) return false;
          left = right;
        }
        return true;
      }
      case 'filter': {
        const f = lookupFilter(e.name);
        if (!f) throw new EvalError(unknownFilter(e.name));
        const value = this.eval(e.expr, scope);
        const args = e.args.map((a) => this.eval(a, scope));
        const kwargs: Record<string, Value> = Object.create(null) as Record<string, Value>;
        for (const kw of e.kwargs) kwargs[kw.name] = this.eval(kw.value, scope);
        const result = f(value, { args, kwargs, budget: this.budget, hint: hintOf(e.expr) });
        if (typeof result === 'string') this.budget.string(result.length);
        return result;
      }
      case 'test': {
        const test = lookupTest(e.name);
        const value = this.eval(e.expr, scope);
        const args = e.args.map((a) => this.eval(a, scope));
        return test(value, args, this.budget) !== e.negated;
      }
      case 'cond': {
        if (truthy(this.eval(e.cond, scope))) return this.eval(e.then, scope);
        return e.otherwise ? this.eval(e.otherwise, scope) : '';
      }
      case 'range':
        return this.range(e.args.map((a) => this.eval(a, scope)));
    }
  }

  private binary(op: Extract<Expr, { t: 'binary' }>['op'], a: Value, b: Value): Value {
    if (op === '~') {
      const sa = toStr(a, this.budget);
      const sb = toStr(b, this.budget);
      this.budget.string(sa.length + sb.length);
      return sa + sb;
    }
    for (const v of [a, b]) if (isUndefined(v)) throw new EvalError(`${v.message()}`);
    if (isNum(a) && isNum(b)) return this.guardArith(op, a, b);
    if (op === '+') {
      if (typeof a === 'string' && typeof b === 'string') {
        this.budget.string(a.length + b.length);
        return a + b;
      }
      if (isList(a) && isList(b)) {
        this.budget.list(a.length + b.length);
        return [...a, ...b];
      }
      throw new EvalError(`cannot add ${describeType(a)} and ${describeType(b)} (use "~" to join as text)`);
    }
    if (op === '*') {
      const [seq, times] = typeof b === 'number' ? [a, b] : [b, a];
      if (typeof times === 'number' && Number.isInteger(times) && (typeof seq === 'string' || isList(seq))) {
        const n = Math.max(0, times);
        if (typeof seq === 'string') {
          this.budget.string(seq.length * n);
          return seq.repeat(n);
        }
        this.budget.list(seq.length * n);
        const out: Value[] = [];
        for (let i = 0; i < n; i++) out.push(...seq);
        return out;
      }
      throw new EvalError(`cannot multiply ${describeType(a)} by ${describeType(b)}`);
    }
    if (typeof a === 'string' && op === '%') throw new EvalError('string formatting with "%" is not supported; use "~" and filters');
    throw new EvalError(`"${op}" needs numbers, not ${describeType(a)} and ${describeType(b)}`);
  }

  /** Python's arithmetic on two numbers (numbers.ts), its errors as EvalErrors. */
  private guardArith(op: ArithOp, a: Num, b: Num): Value {
    try {
      return arith(op, a, b);
    } catch (err) {
      throw new EvalError((err as Error).message);
    }
  }

  private slice(e: Extract<Expr, { t: 'slice' }>, scope: Scope): Value {
    const obj = this.eval(e.obj, scope);
    const num = (x: Expr | null, what: string): number | null => {
      if (!x) return null;
      const v = this.eval(x, scope);
      if (v === null) return null;
      if (typeof v !== 'number' || !Number.isInteger(v)) throw new PositionedError(x.pos, `slice ${what} must be an integer, not ${describeType(v)}`);
      return v;
    };
    const step = num(e.step, 'step') ?? 1;
    if (step === 0) throw new EvalError('slice step cannot be zero');
    if (typeof obj !== 'string' && !isList(obj)) {
      if (isUndefined(obj)) throw new EvalError(`${obj.message()}`);
      throw new EvalError(`cannot slice ${describeType(obj)}`);
    }
    // Python slices code points; a list is its own sequence.
    const seq: readonly Value[] = typeof obj === 'string' ? codePoints(obj, this.budget) : obj;
    const len = seq.length;
    const clamp = (v: number | null, dflt: number, lo: number, hi: number): number => {
      if (v === null) return dflt;
      const x = v < 0 ? v + len : v;
      return Math.min(Math.max(x, lo), hi);
    };
    const start = step > 0 ? clamp(num(e.start, 'start'), 0, 0, len) : clamp(num(e.start, 'start'), len - 1, -1, len - 1);
    const stop = step > 0 ? clamp(num(e.stop, 'stop'), len, 0, len) : clamp(num(e.stop, 'stop'), -1, -1, len - 1);
    const count = step > 0 ? Math.max(0, Math.ceil((stop - start) / step)) : Math.max(0, Math.ceil((start - stop) / -step));
    // A copy of `count` items or characters: charged before it is made, like any other string or list.
    if (typeof obj === 'string') this.budget.string(count);
    else this.budget.list(count);
    const out: Value[] = [];
    for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(seq[i]!);
    return typeof obj === 'string' ? out.join('') : out;
  }

  private range(args: Value[]): Value {
    for (const a of args) if (typeof a !== 'number' || !Number.isInteger(a)) throw new EvalError(`range() needs integers, not ${describeType(a)}`);
    const [x, y, z] = args as number[];
    const [start, stop, step] = args.length === 1 ? [0, x!, 1] : [x!, y!, z ?? 1];
    if (step === 0) throw new EvalError('range() step cannot be zero');
    const n = Math.max(0, Math.ceil((stop - start) / step));
    this.budget.list(n);
    return Array.from({ length: n }, (_, i) => start + i * step);
  }
}

function compare(op: CompareOp, a: Value, b: Value, budget: Budget): boolean {
  switch (op) {
    case '==':
      return equals(a, b, budget);
    case '!=':
      return !equals(a, b, budget);
    case 'in':
      return contains(b, a, budget);
    case 'not in':
      return !contains(b, a, budget);
    case '<':
      return compareValues(a, b, budget) < 0;
    case '<=':
      return compareValues(a, b, budget) <= 0;
    case '>':
      return compareValues(a, b, budget) > 0;
    case '>=':
      return compareValues(a, b, budget) >= 0;
  }
}

/** A readable name for an expression, for "x.y is undefined" messages. */
function hintOf(e: Expr): string {
  switch (e.t) {
    case 'name':
      return e.name;
    case 'attr':
      return `${hintOf(e.obj)}.${e.name}`;
    case 'index':
      return e.index.t === 'literal' ? `${hintOf(e.obj)}[${JSON.stringify(e.index.value)}]` : `${hintOf(e.obj)}[…]`;
    case 'filter':
      return `${hintOf(e.expr)}|${e.name}`;
    case 'literal':
      return JSON.stringify(e.value);
    default:
      return 'value';
  }
}
