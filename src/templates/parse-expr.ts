/**
 * Expressions of the Jinja subset, with Jinja's operator precedence
 * (loosest first), and the nesting bound shared with statements.
 */
import { PyFloat } from './numbers.ts';
import type { CompareOp, Expr } from './ast.ts';
import { TokenCursor, describe } from './token-cursor.ts';
import { isForbiddenKey } from './values.ts';

/** Deep nesting is never needed by a config template and would blow the stack. */
const MAX_EXPR_DEPTH = 64;

export const NAME_LITERALS: Record<string, boolean | null> = { true: true, True: true, false: false, False: false, none: null, None: null };
export const KEYWORDS = new Set(['and', 'or', 'not', 'in', 'is', 'if', 'else']);

export abstract class ExpressionParser extends TokenCursor {
  protected exprDepth = 0;
  protected blockDepth = 0;

  /** Run `fn` one level deeper in `counter`, failing past `max` (the stack would not survive hostile nesting). */
  protected bounded<T>(counter: 'blockDepth' | 'exprDepth', max: number, what: string, fn: () => T): T {
    if (++this[counter] > max) this.fail(this.peek().pos, `${what} nested more than ${max} deep`);
    try {
      return fn();
    } finally {
      this[counter]--;
    }
  }

  expression(): Expr {
    return this.deeper(() => {
      let expr = this.orExpr();
      while (this.isName('if')) {
        const pos = this.next().pos;
        const cond = this.orExpr();
        let otherwise: Expr | null = null;
        if (this.isName('else')) {
          this.next();
          otherwise = this.expression();
        }
        expr = { t: 'cond', cond, then: expr, otherwise, pos };
      }
      return expr;
    });
  }

  protected orExpr(): Expr {
    return this.logic('or', () => this.andExpr());
  }

  protected andExpr(): Expr {
    return this.logic('and', () => this.notExpr());
  }

  /** `a op b op c`, left-associative. */
  protected logic(op: 'or' | 'and', operand: () => Expr): Expr {
    let left = operand();
    while (this.isName(op)) {
      const pos = this.next().pos;
      left = { t: 'logic', op, left, right: operand(), pos };
    }
    return left;
  }

  protected notExpr(): Expr {
    if (this.isName('not')) {
      const pos = this.next().pos;
      return this.deeper(() => ({ t: 'unary', op: 'not', expr: this.notExpr(), pos }));
    }
    return this.compareExpr();
  }

  protected compareExpr(): Expr {
    const first = this.addExpr();
    const rest: Array<{ op: CompareOp; expr: Expr; pos: number }> = [];
    for (;;) {
      const t = this.peek();
      let op: CompareOp | null = null;
      if (t.type === 'op' && ['==', '!=', '<', '<=', '>', '>='].includes(t.value)) {
        op = t.value as CompareOp;
        this.next();
      } else if (this.isName('in')) {
        op = 'in';
        this.next();
      } else if (this.isName('not') && this.isName('in', 1)) {
        op = 'not in';
        this.next();
        this.next();
      }
      if (!op) break;
      rest.push({ op, expr: this.addExpr(), pos: t.pos });
    }
    return rest.length ? { t: 'compare', first, rest, pos: first.pos } : first;
  }

  protected addExpr(): Expr {
    let left = this.concatExpr();
    while (this.isOp('+') || this.isOp('-')) {
      const t = this.next();
      left = { t: 'binary', op: t.value as '+' | '-', left, right: this.concatExpr(), pos: t.pos };
    }
    return left;
  }

  protected concatExpr(): Expr {
    let left = this.mulExpr();
    while (this.isOp('~')) {
      const t = this.next();
      left = { t: 'binary', op: '~', left, right: this.mulExpr(), pos: t.pos };
    }
    return left;
  }

  protected mulExpr(): Expr {
    let left = this.powExpr();
    while (this.isOp('*') || this.isOp('/') || this.isOp('//') || this.isOp('%')) {
      const t = this.next();
      left = { t: 'binary', op: t.value as '*' | '/' | '//' | '%', left, right: this.powExpr(), pos: t.pos };
    }
    return left;
  }

  /** Left-associative, as in Jinja (not Python): 2 ** 3 ** 2 is 64, and -2 ** 2 is 4. */
  protected powExpr(): Expr {
    let left = this.unary(true);
    while (this.isOp('**')) {
      const t = this.next();
      left = { t: 'binary', op: '**', left, right: this.unary(true), pos: t.pos };
    }
    return left;
  }

  protected deeper<T>(fn: () => T): T {
    return this.bounded('exprDepth', MAX_EXPR_DEPTH, 'expression is', fn);
  }

  protected unary(withFilter: boolean): Expr {
    let node: Expr;
    if (this.isOp('-') || this.isOp('+')) {
      const t = this.next();
      node = this.deeper(() => ({ t: 'unary', op: t.value as '-' | '+', expr: this.unary(false), pos: t.pos }));
    } else {
      node = this.primary();
    }
    node = this.postfix(node);
    return withFilter ? this.filters(node) : node;
  }

  protected primary(): Expr {
    const t = this.next();
    switch (t.type) {
      case 'name': {
        if (t.value in NAME_LITERALS) return { t: 'literal', value: NAME_LITERALS[t.value]!, pos: t.pos };
        if (KEYWORDS.has(t.value)) this.fail(t.pos, `unexpected "${t.value}"`);
        if (t.value.startsWith('__')) this.fail(t.pos, `names starting with "__" are not allowed`);
        if (this.isOp('(')) {
          if (t.value === 'range') {
            const { args, kwargs } = this.callArgs();
            if (kwargs.length) this.fail(kwargs[0]!.value.pos, 'range() takes no keyword arguments');
            if (args.length < 1 || args.length > 3) this.fail(t.pos, 'range() takes 1 to 3 arguments');
            return { t: 'range', args, pos: t.pos };
          }
          this.fail(t.pos, `calling "${t.value}()" is not supported: templates can call only range()`);
        }
        return { t: 'name', name: t.value, pos: t.pos };
      }
      case 'string': {
        let value = t.value;
        // Adjacent literals concatenate, as in Python and Jinja.
        while (this.peek().type === 'string') value += this.next().value;
        return { t: 'literal', value, pos: t.pos };
      }
      case 'number': {
        const value = Number(t.value.replace(/_/g, ''));
        if (!Number.isFinite(value)) this.fail(t.pos, `number ${t.value} is out of range`);
        // A literal with a fraction or an exponent is a float, as in Jinja: 1.0 prints 1.0, 1e3 prints 1000.0.
        return { t: 'literal', value: /[.eE]/.test(t.value) ? new PyFloat(value) : value, pos: t.pos };
      }
      case 'op': {
        if (t.value === '(') {
          const first = this.deeper(() => this.expression());
          if (this.isOp(',')) {
            // A tuple; rendered and iterated like a list.
            const items = [first];
            while (this.isOp(',')) {
              this.next();
              if (this.isOp(')')) break;
              items.push(this.deeper(() => this.expression()));
            }
            this.expectOp(')');
            return { t: 'list', items, pos: t.pos };
          }
          this.expectOp(')');
          return first;
        }
        if (t.value === '[') {
          const items: Expr[] = [];
          while (!this.isOp(']')) {
            items.push(this.deeper(() => this.expression()));
            if (!this.isOp(',')) break;
            this.next();
          }
          this.expectOp(']');
          return { t: 'list', items, pos: t.pos };
        }
        if (t.value === '{') {
          const entries: Array<{ key: Expr; value: Expr }> = [];
          while (!this.isOp('}')) {
            const key = this.deeper(() => this.expression());
            this.expectOp(':');
            const value = this.deeper(() => this.expression());
            entries.push({ key, value });
            if (!this.isOp(',')) break;
            this.next();
          }
          this.expectOp('}');
          return { t: 'dict', entries, pos: t.pos };
        }
        return this.fail(t.pos, `unexpected "${t.value}"`);
      }
      default:
        return this.fail(t.pos, `expected an expression, found ${describe(t)}`);
    }
  }

  protected postfix(node: Expr): Expr {
    for (;;) {
      if (this.isOp('.')) {
        this.next();
        const t = this.next();
        let name: string;
        if (t.type === 'name') name = t.value;
        else if (t.type === 'number' && /^\d+$/.test(t.value)) name = t.value;
        else return this.fail(t.pos, `expected an attribute name after ".", found ${describe(t)}`);
        checkAttrName(name, t.pos, (p, m) => this.fail(p, m));
        if (this.isOp('(')) this.fail(this.peek().pos, `calling methods is not supported ("${name}()"); use a filter instead, e.g. "| items"`);
        node = { t: 'attr', obj: node, name, pos: t.pos };
        continue;
      }
      if (this.isOp('[')) {
        const open = this.next();
        node = this.deeper(() => this.subscript(node, open.pos));
        if (this.isOp('(')) this.fail(this.peek().pos, 'calling methods is not supported; use a filter instead');
        continue;
      }
      if (this.isOp('(')) this.fail(this.peek().pos, 'calling values is not supported: templates can call only range()');
      return node;
    }
  }

  protected subscript(obj: Expr, pos: number): Expr {
    const part = (): Expr | null => (this.isOp(':') || this.isOp(']') ? null : this.expression());
    const start = part();
    if (!this.isOp(':')) {
      if (!start) this.fail(this.peek().pos, 'expected an index inside "[]"');
      this.expectOp(']');
      if (start!.t === 'literal' && typeof start!.value === 'string') checkAttrName(start!.value, start!.pos, (p, m) => this.fail(p, m));
      return { t: 'index', obj, index: start!, pos };
    }
    this.next();
    const stop = part();
    let step: Expr | null = null;
    if (this.isOp(':')) {
      this.next();
      step = part();
    }
    this.expectOp(']');
    return { t: 'slice', obj, start, stop, step, pos };
  }

  protected filters(node: Expr): Expr {
    for (;;) {
      if (this.isOp('|')) {
        this.next();
        const nameTok = this.expectName('a filter name');
        let args: Expr[] = [];
        let kwargs: Array<{ name: string; value: Expr }> = [];
        if (this.isOp('(')) ({ args, kwargs } = this.callArgs());
        node = { t: 'filter', expr: node, name: nameTok.value, args, kwargs, pos: nameTok.pos };
        continue;
      }
      if (this.isName('is')) {
        this.next();
        let negated = false;
        if (this.isName('not')) {
          this.next();
          negated = true;
        }
        const nameTok = this.expectName('a test name');
        let args: Expr[] = [];
        if (this.isOp('(')) {
          const call = this.callArgs();
          if (call.kwargs.length) this.fail(call.kwargs[0]!.value.pos, 'tests take no keyword arguments');
          args = call.args;
        } else {
          // Jinja allows one bare argument: `x is divisibleby 3`.
          const t = this.peek();
          const bare = (t.type === 'string' || t.type === 'number' || (t.type === 'name' && !KEYWORDS.has(t.value)) || (t.type === 'op' && (t.value === '[' || t.value === '{')));
          if (bare) args = [this.postfix(this.primary())];
        }
        node = { t: 'test', expr: node, name: nameTok.value, args, negated, pos: nameTok.pos };
        continue;
      }
      return node;
    }
  }

  protected callArgs(): { args: Expr[]; kwargs: Array<{ name: string; value: Expr }> } {
    this.expectOp('(');
    const args: Expr[] = [];
    const kwargs: Array<{ name: string; value: Expr }> = [];
    while (!this.isOp(')')) {
      if (this.peek().type === 'name' && this.isOp('=', 1)) {
        const n = this.next().value;
        this.next();
        kwargs.push({ name: n, value: this.deeper(() => this.expression()) });
      } else {
        if (kwargs.length) this.fail(this.peek().pos, 'positional arguments must come before keyword arguments');
        args.push(this.deeper(() => this.expression()));
      }
      if (!this.isOp(',')) break;
      this.next();
    }
    this.expectOp(')');
    return { args, kwargs };
  }
}

function checkAttrName(name: string, pos: number, fail: (pos: number, message: string) => never): void {
  if (isForbiddenKey(name)) fail(pos, `access to "${name}" is not allowed`);
}
