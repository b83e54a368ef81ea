/**
 * Maintenance windows in the plan: outside the site's windows a switch is
 * held, its objects still fetched and verified (and its version directory
 * built) so the switch at the window's start is instant. A rollback (the
 * registry went back), `--force`, a local pin and a repair are applied at
 * once: they undo harm or are a person's decision on the site.
 */
import { nextWindowOpen, windowOpen } from '../fleet/windows.ts';
import type { MaintenanceWindow } from '../registry/schema.ts';
import type { ModelPlan, Plan, PlanReason } from './plan.ts';

const HELD: ReadonlySet<PlanReason> = new Set(['install', 'upgrade', 'replace-drift']);

/** Mark the switches the window holds back (in place); the time the next window opens, if any was held. */
export function holdForWindows(plan: Plan, windows: readonly MaintenanceWindow[] | undefined, now: Date, force: boolean): Date | undefined {
  if (force || windowOpen(windows, now)) return undefined;
  const next = nextWindowOpen(windows, now) ?? undefined;
  let held = false;
  for (const m of plan.models) {
    if ((m.action !== 'fetch' && m.action !== 'activate') || !HELD.has(m.reason)) continue;
    hold(m, next);
    held = true;
  }
  return held ? next : undefined;
}

function hold(m: ModelPlan, next: Date | undefined): void {
  m.held = 'window';
  m.detail = `${m.detail}; waiting for the maintenance window${next ? ` (opens ${next.toISOString()})` : ''}: ${m.fetch.length ? 'fetching and verifying now, ' : ''}switching then`;
}
