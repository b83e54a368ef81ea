import { describe, expect, it } from 'vitest';
import { MaintenanceWindow } from '../registry/schema.ts';
import { inWindow, nextWindowOpen, windowOpen } from './windows.ts';

const w = (x: Record<string, unknown>) => MaintenanceWindow.parse(x);
const berlinNights = w({ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '02:00', end: '05:00', tz: 'Europe/Berlin' });

describe('maintenance windows', () => {
  it('reads the time in the window\'s time zone (winter: Berlin is UTC+1)', () => {
    // Wednesday 2026-01-14
    expect(inWindow(berlinNights, new Date('2026-01-14T00:59:00Z'))).toBe(false);
    expect(inWindow(berlinNights, new Date('2026-01-14T01:00:00Z'))).toBe(true);
    expect(inWindow(berlinNights, new Date('2026-01-14T03:59:00Z'))).toBe(true);
    expect(inWindow(berlinNights, new Date('2026-01-14T04:00:00Z'))).toBe(false);
  });

  it('follows daylight saving time (summer: Berlin is UTC+2)', () => {
    expect(inWindow(berlinNights, new Date('2026-07-15T00:00:00Z'))).toBe(true);
    expect(inWindow(berlinNights, new Date('2026-07-15T03:00:00Z'))).toBe(false);
  });

  it('keeps to its days', () => {
    // Saturday 2026-01-17, 03:00 in Berlin
    expect(inWindow(berlinNights, new Date('2026-01-17T02:00:00Z'))).toBe(false);
  });

  it('runs past midnight when the end is before the start, counting the day it starts on', () => {
    const fri = w({ days: ['fri'], start: '22:00', end: '02:00', tz: 'UTC' });
    expect(inWindow(fri, new Date('2026-01-16T23:00:00Z'))).toBe(true); // Friday night
    expect(inWindow(fri, new Date('2026-01-17T01:30:00Z'))).toBe(true); // Saturday early, started Friday
    expect(inWindow(fri, new Date('2026-01-18T01:30:00Z'))).toBe(false); // Sunday early: Saturday has no window
  });

  it('is always open without windows', () => {
    expect(windowOpen(undefined, new Date())).toBe(true);
    expect(windowOpen([], new Date())).toBe(true);
  });

  it('finds the next opening', () => {
    expect(nextWindowOpen([berlinNights], new Date('2026-01-16T12:00:00Z'))?.toISOString()).toBe('2026-01-19T01:00:00.000Z'); // Friday noon → Monday 02:00 Berlin
  });

  it('rejects an unknown time zone and a bad time in the schema', () => {
    expect(MaintenanceWindow.safeParse({ start: '02:00', end: '05:00', tz: 'Mars/Olympus' }).success).toBe(false);
    expect(MaintenanceWindow.safeParse({ start: '2:00', end: '05:00' }).success).toBe(false);
    expect(MaintenanceWindow.safeParse({ start: '02:00', end: '05:00', days: ['mo'] }).success).toBe(false);
  });
});
