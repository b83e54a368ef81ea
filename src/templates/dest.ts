/**
 * Rules on a template's `dest` that hold whatever site renders it, so
 * `validate` can say them before any site does: the path stays below
 * config_dir (RelativePath in the schema) and never names the agent's own
 * record of what it rendered. Which destinations a particular site guards
 * (its service scripts, token, config) is known only there: see
 * src/agent/guarded-paths.ts.
 */

/** Where the agent records each rendered output's inputs, inside config_dir. */
export const RENDER_RECORD_FILE = '.modelsync-rendered.json';

/** Why dest can never be rendered on any site, or null. */
export function reservedDestReason(dest: string): string | null {
  const first = dest.split('/')[0]!;
  if (first === RENDER_RECORD_FILE) return `${RENDER_RECORD_FILE} is where the agent records what it rendered`;
  return null;
}
