/**
 * Maintenance windows (`windows:` in a site file): when a site may switch
 * versions. Pure, the clock passed in; times of day are read in each
 * window's IANA time zone through Intl, so daylight saving time is the
 * platform's, not ours.
 */
import { WEEKDAYS, type MaintenanceWindow } from '../registry/schema.ts';

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Weekday (0 = sun) and minute of the day of `at` in `tz`. */
function localTime(at: Date, tz: string): { day: number; minute: number } {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(tz, f);
  }
  const parts = Object.fromEntries(f.formatToParts(at).map((p) => [p.type, p.value]));
  const day = WEEKDAYS.indexOf(String(parts.weekday).toLowerCase().slice(0, 3) as (typeof WEEKDAYS)[number]);
  return { day, minute: Number(parts.hour) * 60 + Number(parts.minute) };
}

const minutes = (hhmm: string): number => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

function startsOn(w: MaintenanceWindow, day: number): boolean {
  return !w.days || w.days.includes(WEEKDAYS[day]!);
}

/** Whether `at` falls in `w`. An end at or before the start runs past midnight into the next day. */
export function inWindow(w: MaintenanceWindow, at: Date): boolean {
  const { day, minute } = localTime(at, w.tz);
  const start = minutes(w.start);
  const end = minutes(w.end);
  if (end > start) return startsOn(w, day) && minute >= start && minute < end;
  if (startsOn(w, day) && minute >= start) return true;
  return startsOn(w, (day + 6) % 7) && minute < end;
}

/** No windows: any time. */
export function windowOpen(windows: readonly MaintenanceWindow[] | undefined, at: Date): boolean {
  return !windows || windows.length === 0 || windows.some((w) => inWindow(w, at));
}

/** Search horizon for the next opening: a week and a day covers every weekly pattern. */
const HORIZON_MIN = 8 * 24 * 60;

/** When the next window opens after `at` (to the minute), or null if none does within a week. */
export function nextWindowOpen(windows: readonly MaintenanceWindow[] | undefined, at: Date): Date | null {
  if (!windows || windows.length === 0) return null;
  // Minute steps from the next whole minute: windows start on minute boundaries in every zone Intl knows.
  const t0 = Math.floor(at.getTime() / 60_000) * 60_000 + 60_000;
  for (let i = 0; i < HORIZON_MIN; i++) {
    const t = new Date(t0 + i * 60_000);
    if (windowOpen(windows, t)) return t;
  }
  return null;
}
