/** The compiled form of a template: a tree of statements and expressions, each with its source offset. */
import type { PyFloat } from './numbers.ts';

export type Expr =
  | { t: 'literal'; value: string | number | PyFloat | boolean | null; pos: number }
  | { t: 'name'; name: string; pos: number }
  | { t: 'attr'; obj: Expr; name: string; pos: number }
  | { t: 'index'; obj: Expr; index: Expr; pos: number }
  | { t: 'slice'; obj: Expr; start: Expr | null; stop: Expr | null; step: Expr | null; pos: number }
  | { t: 'list'; items: Expr[]; pos: number }
  | { t: 'dict'; entries: Array<{ key: Expr; value: Expr }>; pos: number }
  | { t: 'unary'; op: 'not' | '-' | '+'; expr: Expr; pos: number }
  | { t: 'binary'; op: '+' | '-' | '*' | '/' | '//' | '%' | '**' | '~'; left: Expr; right: Expr; pos: number }
  | { t: 'logic'; op: 'and' | 'or'; left: Expr; right: Expr; pos: number }
  | { t: 'compare'; first: Expr; rest: Array<{ op: CompareOp; expr: Expr; pos: number }>; pos: number }
  | { t: 'filter'; expr: Expr; name: string; args: Expr[]; kwargs: Array<{ name: string; value: Expr }>; pos: number }
  | { t: 'test'; expr: Expr; name: string; args: Expr[]; negated: boolean; pos: number }
  | { t: 'cond'; cond: Expr; then: Expr; otherwise: Expr | null; pos: number }
  | { t: 'range'; args: Expr[]; pos: number };

export type CompareOp = '==' | '!=' | '<' | '<=' | '>' | '>=' | 'in' | 'not in';

export type Stmt =
  | { t: 'text'; value: string }
  | { t: 'output'; expr: Expr; pos: number }
  | { t: 'if'; branches: Array<{ cond: Expr; body: Stmt[] }>; otherwise: Stmt[] | null; pos: number }
  | { t: 'for'; targets: string[]; iter: Expr; filter: Expr | null; body: Stmt[]; otherwise: Stmt[] | null; pos: number }
  | { t: 'set'; target: string; expr: Expr; pos: number };
