import { describe, expect, it } from 'vitest';
import { cronProblem } from './cron.ts';

describe('cronProblem names the field and the range', () => {
  it.each([
    ['61 * * * *', 'minute 61 is out of 0–59'],
    ['*/61 * * * *', 'minute step 61 is out of 1–59'],
    ['*/0 * * * *', 'minute step 0 is out of 1–59'],
    ['* 25 * * *', 'hour 25 is out of 0–23'],
    ['0 0 32 * *', 'day of month 32 is out of 1–31'],
    ['0 0 * 13 *', 'month 13 is out of 1–12'],
    ['0 0 * * 8', 'day of week 8 is out of 0–7'],
    ['30-10 * * * *', 'minute range 30-10 runs backwards'],
    ['0 0 * * funday', 'day of week "funday" is not a number or a name (sun…sat)'],
    ['every five minutes', 'five or six fields, e.g. "*/15 * * * *"'],
    ['61 * * * * *', 'second 61 is out of 0–59'],
  ])('%s', (expr, why) => {
    expect(cronProblem(expr)).toBe(why);
  });
  it.each(['*/15 * * * *', '0 2 * * mon-fri', '0 0 1 jan,jul *', '0 */6 * * 7', '5 4 * * sun', '0 0 * * 1-5/2', '0 0,30 8-18 * * *'])('accepts %s', (expr) => {
    expect(cronProblem(expr)).toBeNull();
  });
});
