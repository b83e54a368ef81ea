import { ModelsyncError } from '../errors.ts';

/**
 * A template that cannot be compiled or rendered. `line` and `col` point into
 * the template file (1-based), so `validate` can report
 * `templates/FaceRecon.yaml.j2:12:5: …` like any other registry problem.
 */
export class TemplateError extends ModelsyncError {
  readonly template: string;
  readonly line: number;
  readonly col: number;
  /** The message without the position prefix. */
  readonly reason: string;

  constructor(template: string, line: number, col: number, reason: string) {
    super('TemplateError', `${template}:${line}:${col}: ${reason}`, { data: { template, line, col, reason }, retry: 'stalling' });
    this.template = template;
    this.line = line;
    this.col = col;
    this.reason = reason;
  }
}
