/**
 * What is wrong with a cron expression, in words that name the field:
 * `61 * * * *` is "minute 61 is out of 0–59", not "five or six fields", and
 * `*\/61 * * * *` (which node-cron accepts and runs at minute 0 only) is
 * refused. The one check behind `validate` (a site's schedule) and the agent
 * (agent.yaml's); node-cron still parses and runs the expression.
 */

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const SECOND: FieldSpec = { name: 'second', min: 0, max: 59 };
const FIVE: readonly FieldSpec[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  // 7 is Sunday too, as in most crons.
  { name: 'day of week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

/** Why expression is not a valid cron expression, or null. */
export function cronProblem(expression: string): string | null {
  const fields = expression.trim().split(/\s+/).filter(Boolean);
  if (fields.length !== 5 && fields.length !== 6) {
    return 'five or six fields, e.g. "*/15 * * * *"';
  }
  const specs = fields.length === 6 ? [SECOND, ...FIVE] : FIVE;
  for (const [i, field] of fields.entries()) {
    const why = fieldProblem(field, specs[i]!);
    if (why) return why;
  }
  return null;
}

function fieldProblem(field: string, spec: FieldSpec): string | null {
  const range = `${spec.min}–${spec.max}`;
  for (const part of field.split(',')) {
    const m = /^([^/]+)(?:\/(.+))?$/.exec(part);
    if (!m) return `${spec.name} ${JSON.stringify(part)} is not a value, a range or a step`;
    const [, base, step] = m as unknown as [string, string, string | undefined];
    if (step !== undefined) {
      if (!/^\d+$/.test(step)) return `${spec.name} step ${JSON.stringify(step)} is not a number`;
      const n = Number(step);
      // A step as large as the whole range fires once at most: almost always a typo (*/61 for */6).
      if (n < 1 || n > spec.max - spec.min) return `${spec.name} step ${n} is out of 1–${spec.max - spec.min}`;
    }
    if (base === '*') continue;
    const ends = base.split('-');
    if (ends.length > 2) return `${spec.name} ${JSON.stringify(base)} is not a value or a range`;
    const values: number[] = [];
    for (const e of ends) {
      const v = value(e, spec);
      if (v === null) return `${spec.name} ${JSON.stringify(e)} is not a number${spec.names ? ` or a name (${spec.names[0]}…${spec.names.at(-1)})` : ''}`;
      if (v < spec.min || v > spec.max) return `${spec.name} ${v} is out of ${range}`;
      values.push(v);
    }
    if (values.length === 2 && values[0]! > values[1]!) return `${spec.name} range ${base} runs backwards`;
  }
  return null;
}

function value(text: string, spec: FieldSpec): number | null {
  if (/^\d+$/.test(text)) return Number(text);
  const i = spec.names?.indexOf(text.toLowerCase().slice(0, 3)) ?? -1;
  if (i >= 0 && spec.names![i]!.length === 3 && /^[a-z]+$/i.test(text)) return spec.name === 'month' ? i + 1 : i;
  return null;
}
