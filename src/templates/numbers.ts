/**
 * Numbers as Python (and so Jinja) has them: integers and floats are
 * different types. `{{ 4 / 2 }}` is `2.0`, `{{ 1.0 }}` is `1.0`, and a YAML
 * config rendered from a template keeps a float where it had one. An integer
 * is a JavaScript number holding an integer; a float is a PyFloat, whatever
 * its value. (Integers past 2^53 lose precision, where Python's are exact.)
 */

export class PyFloat {
  constructor(readonly value: number) {}
}

export type Num = number | PyFloat;

export function isNum(v: unknown): v is Num {
  return typeof v === 'number' || v instanceof PyFloat;
}

export function isFloat(v: unknown): v is PyFloat {
  return v instanceof PyFloat;
}

/** An integer (not a float, not a boolean). */
export function isInt(v: unknown): v is number {
  return typeof v === 'number';
}

export function numValue(v: Num): number {
  return typeof v === 'number' ? v : v.value;
}

/** A plain JavaScript number from outside (the context): an integer stays one, anything else is a float. */
export function fromJs(n: number): Num {
  return Number.isInteger(n) ? n : new PyFloat(n);
}

/** Python's repr() of a float: shortest round-trip digits, `.0` on integral values, exponent past 1e16 or below 1e-4. */
export function floatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mant, expText] = x.toExponential().split('e') as [string, string];
  const exp = Number(expText);
  if (exp < -4 || exp >= 16) return `${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  const fixed = String(x);
  return fixed.includes('.') ? fixed : `${fixed}.0`;
}

export function numRepr(v: Num): string {
  return typeof v === 'number' ? String(v) : floatRepr(v.value);
}

export type ArithOp = '+' | '-' | '*' | '/' | '//' | '%' | '**';

/** a op b with Python's types and semantics; throws a plain Error (the caller positions it) on division by zero. */
export function arith(op: ArithOp, a: Num, b: Num): Num {
  const x = numValue(a);
  const y = numValue(b);
  const float = isFloat(a) || isFloat(b);
  const wrap = (n: number): Num => (float ? new PyFloat(n) : n);
  switch (op) {
    case '+':
      return wrap(x + y);
    case '-':
      return wrap(x - y);
    case '*':
      return wrap(x * y);
    case '/':
      if (y === 0) throw new Error('division by zero');
      return new PyFloat(x / y);
    case '//':
      if (y === 0) throw new Error('division by zero');
      return wrap(Math.floor(x / y));
    case '%': {
      if (y === 0) throw new Error('modulo by zero');
      // Python's modulo takes the sign of the divisor.
      return wrap(((x % y) + y) % y);
    }
    case '**':
      if (x === 0 && y < 0) throw new Error('0 cannot be raised to a negative power');
      // An integer to a negative integer power is a float in Python (2 ** -1 == 0.5).
      return float || y < 0 ? new PyFloat(x ** y) : x ** y;
  }
}

export function negate(v: Num): Num {
  return typeof v === 'number' ? -v : new PyFloat(-v.value);
}

/**
 * Python's round(x, ndigits) for a float: to the nearest, ties to even on the
 * exact binary value (round(2.5) == 2.0, round(2.675, 2) == 2.67 because
 * 2.675 is stored a little below it).
 */
export function roundHalfEven(x: number, ndigits: number): number {
  if (!Number.isFinite(x)) return x;
  if (ndigits < 0) {
    const f = 10 ** -ndigits;
    return roundHalfEven(x / f, 0) * f;
  }
  if (Math.abs(x) >= 1e21 || ndigits > 90) return x;
  // toFixed rounds exactly, ties away from zero; a tie shows as a 5 and only zeros after it.
  const exact = Math.abs(x).toFixed(Math.min(100, ndigits + 60));
  const dot = exact.indexOf('.');
  const tail = exact.slice(dot + 1 + ndigits);
  const isTie = /^50*$/.test(tail);
  let r = Number(Math.abs(x).toFixed(ndigits));
  if (isTie) {
    const down = Number(exact.slice(0, dot + 1 + ndigits));
    const lastDigit = Number((ndigits === 0 ? exact.slice(0, dot) : exact.slice(dot + ndigits, dot + ndigits + 1)).slice(-1));
    r = lastDigit % 2 === 0 ? down : r;
  }
  return x < 0 ? -r : r;
}
