import { describe, expect, it } from 'vitest';
import { FD_RESERVE, fdLimitProblem, openFileLimit } from './fd-limit.ts';

const limits = (soft: string): string => `Limit                     Soft Limit           Hard Limit           Units\nMax open files            ${soft}                524288               files\n`;

describe('the open-file limit against --max-connections', () => {
  it('reads the soft limit of /proc/self/limits, and this process’s real one', () => {
    expect(openFileLimit(() => limits('1024'))).toBe(1024);
    expect(openFileLimit(() => limits('unlimited'))).toBe(Number.POSITIVE_INFINITY);
    expect(openFileLimit(() => 'nothing here')).toBeNull();
    expect(openFileLimit(() => { throw new Error('no /proc'); })).toBeNull();
    expect(openFileLimit()).toBeGreaterThan(0);
  });
  it('warns when connections and the reserve do not fit, naming both numbers and the fix', () => {
    expect(fdLimitProblem(1024, 4096)).toMatch(/open-file limit \(1024\) is below --max-connections \(4096\).*LimitNOFILE/);
    expect(fdLimitProblem(4096 + FD_RESERVE, 4096)).toBeNull();
    expect(fdLimitProblem(null, 4096)).toBeNull();
  });
});
