/**
 * Tests (`x is defined`, `x is divisibleby 3`) and `in`: like filters, plain
 * data in, a boolean out, charging the render's budget for what they scan.
 */
import { suggest } from '../registry/zod-problems.ts';
import { isFloat, isNum, numValue } from './numbers.ts';
import { Budget, EvalError, Undefined, compareValues, describeType, equals, isList, isPlainObject, isForbiddenKey, isUndefined, type Value } from './values.ts';

type Test = (value: Value, args: Value[], budget: Budget) => boolean;

const TESTS: Record<string, Test> = {
  defined: (v) => !isUndefined(v),
  undefined: (v) => isUndefined(v),
  none: (v) => v === null,
  boolean: (v) => typeof v === 'boolean',
  true: (v) => v === true,
  false: (v) => v === false,
  // As Python's numbers.Number, which booleans are.
  number: (v) => isNum(v) || typeof v === 'boolean',
  integer: (v) => typeof v === 'number',
  float: (v) => isFloat(v),
  string: (v) => typeof v === 'string',
  mapping: (v) => isPlainObject(v),
  sequence: (v) => isList(v) || typeof v === 'string',
  iterable: (v) => isList(v) || typeof v === 'string' || isPlainObject(v),
  lower: (v) => typeof v === 'string' && v === v.toLowerCase(),
  upper: (v) => typeof v === 'string' && v === v.toUpperCase(),
  even: (v) => isNum(v) && numValue(v) % 2 === 0,
  odd: (v) => isNum(v) && Math.abs(numValue(v) % 2) === 1,
  divisibleby(v, [n]) {
    if (!isNum(v) || n === undefined || !isNum(n) || numValue(n) === 0) throw new EvalError('divisibleby needs two numbers, the second not zero');
    return numValue(v) % numValue(n) === 0;
  },
  eq: (v, [x], b) => equals(v, x ?? new Undefined('argument'), b),
  ne: (v, [x], b) => !equals(v, x ?? new Undefined('argument'), b),
  lt: (v, [x], b) => compareValues(v, x ?? null, b) < 0,
  le: (v, [x], b) => compareValues(v, x ?? null, b) <= 0,
  gt: (v, [x], b) => compareValues(v, x ?? null, b) > 0,
  ge: (v, [x], b) => compareValues(v, x ?? null, b) >= 0,
  in: (v, [x], b) => contains(x ?? null, v, b),
  sameas: (v, [x]) => v === x,
};
TESTS.equalto = TESTS.eq!;
TESTS['=='] = TESTS.eq!;
TESTS['!='] = TESTS.ne!;
TESTS['<'] = TESTS.lt!;
TESTS['<='] = TESTS.le!;
TESTS['>'] = TESTS.gt!;
TESTS['>='] = TESTS.ge!;
TESTS.greaterthan = TESTS.gt!;
TESTS.lessthan = TESTS.lt!;

/** `unknown test "x"`, with the nearest known test when there is one within two edits. */
export function unknownTest(name: string): string {
  return `unknown test "${name}"${suggest(name, Object.keys(TESTS))}`;
}

export function lookupTest(name: string): Test {
  if (!Object.hasOwn(TESTS, name)) throw new EvalError(unknownTest(name));
  return TESTS[name]!;
}

export function hasTest(name: string): boolean {
  return Object.hasOwn(TESTS, name);
}

/** `needle in haystack`: substring, list member (deep equality) or mapping key. */
export function contains(haystack: Value, needle: Value, budget: Budget): boolean {
  if (isUndefined(haystack)) throw new EvalError(`${haystack.message()}`);
  if (typeof haystack === 'string') {
    if (typeof needle !== 'string') throw new EvalError(`"in <string>" needs a string on the left, not ${describeType(needle)}`);
    budget.charge(haystack.length);
    return haystack.includes(needle);
  }
  if (isList(haystack)) return haystack.some((x) => equals(x, needle, budget));
  if (isPlainObject(haystack)) return typeof needle === 'string' && !isForbiddenKey(needle) && Object.hasOwn(haystack, needle);
  throw new EvalError(`"in" needs a string, list or mapping on the right, not ${describeType(haystack)}`);
}

export const TEST_NAMES = Object.keys(TESTS).sort();
