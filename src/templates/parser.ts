/**
 * Recursive-descent parser for the Jinja subset modelsync renders, with
 * Jinja's operator precedence. Anything outside the subset (macros,
 * includes, calls other than range()) is a compile error that says so,
 * rather than something that half works.
 */
import { PyFloat } from './numbers.ts';
import type { CompareOp, Expr, Stmt } from './ast.ts';
import { TemplateError } from './errors.ts';
import type { Lexed, Token } from './lexer.ts';
import { isForbiddenKey } from './values.ts';

/** Deep nesting is never needed by a config template and would blow the stack. */
const MAX_EXPR_DEPTH = 64;
const MAX_BLOCK_DEPTH = 32;

const SUPPORTED_TAGS = 'if, elif, else, endif, for, endfor, set, raw';
const UNSUPPORTED_TAGS = new Set(['macro', 'call', 'include', 'import', 'from', 'extends', 'block', 'filter', 'with', 'autoescape', 'do', 'namespace']);
const NAME_LITERALS: Record<string, boolean | null> = { true: true, True: true, false: false, False: false, none: null, None: null };
const KEYWORDS = new Set(['and', 'or', 'not', 'in', 'is', 'if', 'else']);

export function parse(lexed: Lexed, name: string): Stmt[] {
  return new Parser(lexed, name).template();
}

class Parser {
  private i = 0;
  private exprDepth = 0;
  private blockDepth = 0;
  private readonly tokens: Token[];

  constructor(private readonly lexed: Lexed, private readonly name: string) {
    this.tokens = lexed.tokens;
  }

  // ---- helpers ----

  private fail(pos: number, message: string): never {
    const { line, col } = this.lexed.position(pos);
    throw new TemplateError(this.name, line, col, message);
  }

  private peek(offset = 0): Token {
    return this.tokens[Math.min(this.i + offset, this.tokens.length - 1)]!;
  }

  private next(): Token {
    const t = this.peek();
    if (this.i < this.tokens.length - 1) this.i++;
    return t;
  }

  private isOp(value: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.type === 'op' && t.value === value;
  }

  private isName(value: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.type === 'name' && t.value === value;
  }

  private expectOp(value: string): Token {
    const t = this.next();
    if (t.type !== 'op' || t.value !== value) this.fail(t.pos, `expected "${value}", found ${describe(t)}`);
    return t;
  }

  private expectName(what: string): Token {
    const t = this.next();
    if (t.type !== 'name') this.fail(t.pos, `expected ${what}, found ${describe(t)}`);
    return t;
  }

  private expectBlockEnd(tag: string): void {
    const t = this.next();
    if (t.type !== 'block_end') this.fail(t.pos, `expected "%}" to end "${tag}", found ${describe(t)}`);
  }

  // ---- statements ----

  template(): Stmt[] {
    const { body, end } = this.body([]);
    if (end) this.fail(end.pos, `unexpected "${end.value}": no open block to end`);
    return body;
  }

  /**
   * Statements until one of `enders` (a block tag name) or the end of the
   * template. Returns the ending tag's name token, positioned after it.
   */
  private body(enders: string[], opener?: { tag: string; pos: number }): { body: Stmt[]; end: Token | null } {
    const out: Stmt[] = [];
    for (;;) {
      const t = this.peek();
      if (t.type === 'eof') {
        if (opener) this.fail(opener.pos, `"${opener.tag}" is never closed (expected ${enders.map((e) => `{% ${e} %}`).join(' or ')})`);
        return { body: out, end: null };
      }
      if (t.type === 'text') {
        this.next();
        out.push({ t: 'text', value: t.value });
        continue;
      }
      if (t.type === 'var_start') {
        this.next();
        const expr = this.expression();
        const end = this.next();
        if (end.type !== 'var_end') this.fail(end.pos, `expected "}}", found ${describe(end)}`);
        out.push({ t: 'output', expr, pos: expr.pos });
        continue;
      }
      if (t.type === 'block_start') {
        const tagTok = this.peek(1);
        if (tagTok.type !== 'name') this.fail(tagTok.pos, `expected a tag name after "{%", found ${describe(tagTok)}`);
        const tag = tagTok.value;
        if (enders.includes(tag)) {
          this.next();
          this.next();
          return { body: out, end: tagTok };
        }
        this.next();
        this.next();
        out.push(this.statement(tag, tagTok.pos));
        continue;
      }
      this.fail(t.pos, `unexpected ${describe(t)}`);
    }
  }

  private statement(tag: string, pos: number): Stmt {
    switch (tag) {
      case 'if':
        return this.nested(() => this.ifStatement(pos));
      case 'for':
        return this.nested(() => this.forStatement(pos));
      case 'set':
        return this.setStatement(pos);
      case 'elif':
      case 'else':
      case 'endif':
      case 'endfor':
      case 'endraw':
        return this.fail(pos, `unexpected "${tag}": no matching open block`);
      default:
        if (UNSUPPORTED_TAGS.has(tag)) return this.fail(pos, `the "${tag}" tag is not supported in modelsync templates (supported: ${SUPPORTED_TAGS})`);
        return this.fail(pos, `unknown tag "${tag}" (supported: ${SUPPORTED_TAGS})`);
    }
  }

  private nested<T>(fn: () => T): T {
    return this.bounded('blockDepth', MAX_BLOCK_DEPTH, 'blocks are', fn);
  }

  /** Run `fn` one level deeper in `counter`, failing past `max` (the stack would not survive hostile nesting). */
  private bounded<T>(counter: 'blockDepth' | 'exprDepth', max: number, what: string, fn: () => T): T {
    if (++this[counter] > max) this.fail(this.peek().pos, `${what} nested more than ${max} deep`);
    try {
      return fn();
    } finally {
      this[counter]--;
    }
  }

  private ifStatement(pos: number): Stmt {
    const branches: Array<{ cond: Expr; body: Stmt[] }> = [];
    let cond = this.expression();
    this.expectBlockEnd('if');
    for (;;) {
      const { body, end } = this.body(['elif', 'else', 'endif'], { tag: 'if', pos });
      branches.push({ cond, body });
      if (end!.value === 'elif') {
        cond = this.expression();
        this.expectBlockEnd('elif');
        continue;
      }
      if (end!.value === 'else') {
        this.expectBlockEnd('else');
        const rest = this.body(['endif'], { tag: 'if', pos });
        this.expectBlockEnd('endif');
        return { t: 'if', branches, otherwise: rest.body, pos };
      }
      this.expectBlockEnd('endif');
      return { t: 'if', branches, otherwise: null, pos };
    }
  }

  private forStatement(pos: number): Stmt {
    const targets = [this.assignTarget()];
    while (this.isOp(',')) {
      this.next();
      targets.push(this.assignTarget());
    }
    const inTok = this.next();
    if (inTok.type !== 'name' || inTok.value !== 'in') this.fail(inTok.pos, `expected "in" in "for", found ${describe(inTok)}`);
    // No inline if/else here: `for x in xs if cond` filters the loop, as in Jinja.
    const iter = this.orExpr();
    let filter: Expr | null = null;
    if (this.isName('if')) {
      this.next();
      filter = this.expression();
    }
    if (this.isName('recursive')) this.fail(this.peek().pos, 'recursive loops are not supported');
    this.expectBlockEnd('for');
    const { body, end } = this.body(['else', 'endfor'], { tag: 'for', pos });
    let otherwise: Stmt[] | null = null;
    if (end!.value === 'else') {
      this.expectBlockEnd('else');
      otherwise = this.body(['endfor'], { tag: 'for', pos }).body;
    }
    this.expectBlockEnd('endfor');
    return { t: 'for', targets, iter, filter, body, otherwise, pos };
  }

  private setStatement(pos: number): Stmt {
    const target = this.assignTarget();
    if (this.isOp('.')) this.fail(this.peek().pos, 'assigning to an attribute is not supported (no namespace objects)');
    if (this.isOp(',')) this.fail(this.peek().pos, 'assigning several names at once is not supported');
    if (this.peek().type === 'block_end') this.fail(this.peek().pos, 'block assignments ({% set x %}…{% endset %}) are not supported; use {% set x = … %}');
    this.expectOp('=');
    const expr = this.expression();
    this.expectBlockEnd('set');
    return { t: 'set', target, expr, pos };
  }

  private assignTarget(): string {
    const t = this.expectName('a variable name');
    if (KEYWORDS.has(t.value) || t.value in NAME_LITERALS || t.value === 'loop') this.fail(t.pos, `"${t.value}" cannot be assigned to`);
    if (t.value.startsWith('__')) this.fail(t.pos, `names starting with "__" are not allowed`);
    return t.value;
  }

  // ---- expressions (Jinja precedence, loosest first) ----

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

  private orExpr(): Expr {
    return this.logic('or', () => this.andExpr());
  }

  private andExpr(): Expr {
    return this.logic('and', () => this.notExpr());
  }

  /** `a op b op c`, left-associative. */
  private logic(op: 'or' | 'and', operand: () => Expr): Expr {
    let left = operand();
    while (this.isName(op)) {
      const pos = this.next().pos;
      left = { t: 'logic', op, left, right: operand(), pos };
    }
    return left;
  }

  private notExpr(): Expr {
    if (this.isName('not')) {
      const pos = this.next().pos;
      return this.deeper(() => ({ t: 'unary', op: 'not', expr: this.notExpr(), pos }));
    }
    return this.compareExpr();
  }

  private compareExpr(): Expr {
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

  private addExpr(): Expr {
    let left = this.concatExpr();
    while (this.isOp('+') || this.isOp('-')) {
      const t = this.next();
      left = { t: 'binary', op: t.value as '+' | '-', left, right: this.concatExpr(), pos: t.pos };
    }
    return left;
  }

  private concatExpr(): Expr {
    let left = this.mulExpr();
    while (this.isOp('~')) {
      const t = this.next();
      left = { t: 'binary', op: '~', left, right: this.mulExpr(), pos: t.pos };
    }
    return left;
  }

  private mulExpr(): Expr {
    let left = this.powExpr();
    while (this.isOp('*') || this.isOp('/') || this.isOp('//') || this.isOp('%')) {
      const t = this.next();
      left = { t: 'binary', op: t.value as '*' | '/' | '//' | '%', left, right: this.powExpr(), pos: t.pos };
    }
    return left;
  }

  /** Left-associative, as in Jinja (not Python): 2 ** 3 ** 2 is 64, and -2 ** 2 is 4. */
  private powExpr(): Expr {
    let left = this.unary(true);
    while (this.isOp('**')) {
      const t = this.next();
      left = { t: 'binary', op: '**', left, right: this.unary(true), pos: t.pos };
    }
    return left;
  }

  private deeper<T>(fn: () => T): T {
    return this.bounded('exprDepth', MAX_EXPR_DEPTH, 'expression is', fn);
  }

  private unary(withFilter: boolean): Expr {
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

  private primary(): Expr {
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

  private postfix(node: Expr): Expr {
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

  private subscript(obj: Expr, pos: number): Expr {
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

  private filters(node: Expr): Expr {
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

  private callArgs(): { args: Expr[]; kwargs: Array<{ name: string; value: Expr }> } {
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

function describe(t: Token): string {
  switch (t.type) {
    case 'eof':
      return 'the end of the template';
    case 'var_end':
      return '"}}"';
    case 'block_end':
      return '"%}"';
    case 'var_start':
      return '"{{"';
    case 'block_start':
      return '"{%"';
    case 'text':
      return 'text';
    case 'string':
      return `string ${JSON.stringify(t.value)}`;
    default:
      return `"${t.value}"`;
  }
}
