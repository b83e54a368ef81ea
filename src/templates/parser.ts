/**
 * Recursive-descent parser for the Jinja subset modelsync renders, with
 * Jinja's operator precedence. Anything outside the subset (macros,
 * includes, calls other than range()) is a compile error that says so,
 * rather than something that half works.
 */
import type { Expr, Stmt } from './ast.ts';
import type { Lexed, Token } from './lexer.ts';
import { ExpressionParser, KEYWORDS, NAME_LITERALS } from './parse-expr.ts';
import { describe } from './token-cursor.ts';

/** Deep nesting is never needed by a config template and would blow the stack. */
const MAX_BLOCK_DEPTH = 32;

const SUPPORTED_TAGS = 'if, elif, else, endif, for, endfor, set, raw';
const UNSUPPORTED_TAGS = new Set(['macro', 'call', 'include', 'import', 'from', 'extends', 'block', 'filter', 'with', 'autoescape', 'do', 'namespace']);

export function parse(lexed: Lexed, name: string): Stmt[] {
  return new Parser(lexed, name).template();
}

class Parser extends ExpressionParser {
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
}
