/**
 * A safe, Jinja-compatible template engine for the config files sites render
 * from the registry (see docs/registry.md, "Templates").
 *
 *   const t = compileTemplate(text, 'templates/FaceRecon.yaml.j2'); // throws TemplateError(line, col)
 *   const out = renderTemplate(t, templateContext({...}));           // throws TemplateError(line, col)
 *
 * Registry content is untrusted on a site, so templates can only read plain
 * data, call the built-in filters and range(), and are bounded in output size,
 * loop iterations and total work. Compilation checks every filter and test
 * name, so `validate` catches a typo before any site renders it.
 */
import type { Expr, Stmt } from './ast.ts';
import { TemplateError } from './errors.ts';
import { hasTest, lookupFilter, unknownFilter, unknownTest } from './filters.ts';
import { tokenize } from './lexer.ts';
import { parse } from './parser.ts';
import { render, type CompiledTemplate } from './render.ts';
import { DEFAULT_LIMITS, type Limits } from './values.ts';

export { TemplateError } from './errors.ts';
export { DEFAULT_LIMITS, type Limits } from './values.ts';
export { FILTER_NAMES, TEST_NAMES } from './filters.ts';
export { RENDER_RECORD_FILE, reservedDestReason } from './dest.ts';
export { templateContext, type TemplateContext, type TemplateModel, type TemplateFile } from './context.ts';

export type Template = CompiledTemplate;

/** Templates are config files; anything near this size is a mistake or an attack. */
export const MAX_TEMPLATE_SIZE = 1 << 20;

export function compileTemplate(text: string, name: string): Template {
  if (text.length > MAX_TEMPLATE_SIZE) throw new TemplateError(name, 1, 1, `template is larger than ${MAX_TEMPLATE_SIZE} characters`);
  const lexed = tokenize(text, name);
  const body = parse(lexed, name);
  const fail = (pos: number, message: string): never => {
    const { line, col } = lexed.position(pos);
    throw new TemplateError(name, line, col, message);
  };
  checkNames(body, fail);
  return { name, body, position: lexed.position };
}

export function renderTemplate(t: Template, context: unknown, limits: Partial<Limits> = {}): string {
  return render(t, context, { ...DEFAULT_LIMITS, ...limits });
}

/** Unknown filters and tests are compile errors, not surprises on a site. */
function checkNames(body: readonly Stmt[], fail: (pos: number, message: string) => never): void {
  const expr = (e: Expr | null): void => {
    if (!e) return;
    switch (e.t) {
      case 'literal':
      case 'name':
        return;
      case 'attr':
        return expr(e.obj);
      case 'index':
        expr(e.obj);
        return expr(e.index);
      case 'slice':
        expr(e.obj);
        expr(e.start);
        expr(e.stop);
        return expr(e.step);
      case 'list':
        return e.items.forEach(expr);
      case 'dict':
        return e.entries.forEach(({ key, value }) => {
          expr(key);
          expr(value);
        });
      case 'unary':
        return expr(e.expr);
      case 'binary':
      case 'logic':
        expr(e.left);
        return expr(e.right);
      case 'compare':
        expr(e.first);
        return e.rest.forEach((r) => expr(r.expr));
      case 'filter':
        if (!lookupFilter(e.name)) fail(e.pos, unknownFilter(e.name));
        expr(e.expr);
        e.args.forEach(expr);
        return e.kwargs.forEach((k) => expr(k.value));
      case 'test':
        if (!hasTest(e.name)) fail(e.pos, unknownTest(e.name));
        expr(e.expr);
        return e.args.forEach(expr);
      case 'cond':
        expr(e.cond);
        expr(e.then);
        return expr(e.otherwise);
      case 'range':
        return e.args.forEach(expr);
    }
  };
  const stmts = (list: readonly Stmt[] | null): void => {
    for (const s of list ?? []) {
      switch (s.t) {
        case 'text':
          break;
        case 'output':
        case 'set':
          expr(s.expr);
          break;
        case 'if':
          for (const b of s.branches) {
            expr(b.cond);
            stmts(b.body);
          }
          stmts(s.otherwise);
          break;
        case 'for':
          expr(s.iter);
          expr(s.filter);
          stmts(s.body);
          stmts(s.otherwise);
          break;
      }
    }
  };
  stmts(body);
}
