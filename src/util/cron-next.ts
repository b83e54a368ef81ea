/**
 * When a cron expression fires next: shared by the agent (its next pass)
 * and the hub (when a silent site counts as Stale), so it lives below both.
 */
import cron, { type ScheduledTask } from 'node-cron';

// Five years covers every satisfiable expression (29 February, day-of-week combinations).
const SEARCH_DAYS = 5 * 366;

/**
 * The first time strictly after `after` (ms) that matches `expression`, in
 * local time, or null when nothing matches within five years.
 */
export function nextCronRun(expression: string, after: number): number | null {
  const fields = cron.parse(expression);
  const task: ScheduledTask = cron.createTask(expression, () => {});
  try {
    const hours = [...fields.hour].sort((a, b) => a - b);
    const minutes = [...fields.minute].sort((a, b) => a - b);
    const seconds = [...fields.second].sort((a, b) => a - b);
    const start = new Date(after);
    const day0 = new Date(start.getFullYear(), start.getMonth(), start.getDate());
    for (let d = 0; d < SEARCH_DAYS; d++) {
      const y = day0.getFullYear();
      const mo = day0.getMonth();
      const da = day0.getDate() + d;
      // The day either matches at its first allowed time or not at all: hours, minutes and
      // seconds come from the expression, so only the day fields can make match() fail.
      const first = new Date(y, mo, da, hours[0], minutes[0], seconds[0]);
      if (!task.match(first)) continue;
      for (const h of hours) {
        for (const m of minutes) {
          for (const s of seconds) {
            const t = new Date(y, mo, da, h, m, s);
            // A DST gap can turn 02:30 into 03:30; skip candidates the clock never shows.
            if (t.getTime() > after && t.getHours() === h && t.getMinutes() === m && task.match(t)) return t.getTime();
          }
        }
      }
    }
    return null;
  } finally {
    void task.destroy();
  }
}
