/**
 * The schedule floor (DESIGN.md, "Safety rules"): a schedule fires at most
 * once a minute. A six-field expression whose seconds field matches more than
 * one second fires several times a minute (`* * * * * *`: every second, about
 * 200 times the load of a normal fleet on the hub). One rule for agent.yaml,
 * the site file and the agent's timer.
 */
import cron from 'node-cron';

/** Why a (valid) cron expression fires too often, or undefined when it does not. */
export function cronFloorProblem(expression: string): string | undefined {
  let seconds: number[];
  try {
    seconds = [...cron.parse(expression).second];
  } catch {
    return undefined; // not valid: the validity check reports it
  }
  if (seconds.length <= 1) return undefined;
  return `${JSON.stringify(expression)} fires ${seconds.length} times a minute (its seconds field); a schedule fires at most once a minute: use five fields, e.g. "*/15 * * * *"`;
}
