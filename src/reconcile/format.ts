/** Small formatting helpers shared by the store commands (reconcile, status, gc). */
export { formatBytes } from '../util/bytes.ts';

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(1)} s`;
  const m = s / 60;
  if (m < 120) return `${m.toFixed(0)} min`;
  return `${(m / 60).toFixed(1)} h`;
}

/** An age in whole seconds, as `status` shows staleness ("0 s", "6 s", "3 min", "1.5 h"). */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  return formatDuration(s * 1000);
}
