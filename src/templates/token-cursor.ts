/**
 * A cursor over a template's tokens: look ahead, consume, expect, and fail
 * with the template's file, line and column.
 */
import { TemplateError } from './errors.ts';
import type { Lexed, Token } from './lexer.ts';

export abstract class TokenCursor {
  protected i = 0;
  protected readonly tokens: Token[];

  constructor(protected readonly lexed: Lexed, protected readonly name: string) {
    this.tokens = lexed.tokens;
  }

  protected fail(pos: number, message: string): never {
    const { line, col } = this.lexed.position(pos);
    throw new TemplateError(this.name, line, col, message);
  }

  protected peek(offset = 0): Token {
    return this.tokens[Math.min(this.i + offset, this.tokens.length - 1)]!;
  }

  protected next(): Token {
    const t = this.peek();
    if (this.i < this.tokens.length - 1) this.i++;
    return t;
  }

  protected isOp(value: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.type === 'op' && t.value === value;
  }

  protected isName(value: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.type === 'name' && t.value === value;
  }

  protected expectOp(value: string): Token {
    const t = this.next();
    if (t.type !== 'op' || t.value !== value) this.fail(t.pos, `expected "${value}", found ${describe(t)}`);
    return t;
  }

  protected expectName(what: string): Token {
    const t = this.next();
    if (t.type !== 'name') this.fail(t.pos, `expected ${what}, found ${describe(t)}`);
    return t;
  }

  protected expectBlockEnd(tag: string): void {
    const t = this.next();
    if (t.type !== 'block_end') this.fail(t.pos, `expected "%}" to end "${tag}", found ${describe(t)}`);
  }

  // ---- statements ----
}

export function describe(t: Token): string {
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
