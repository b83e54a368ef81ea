/**
 * Each controller or operator step as the files it changes and its commit
 * message. Pure text in, text out: the rollout file keeps its comments and
 * layout (only `state` changes), model_registry.yaml is edited by the same
 * splice promote uses.
 */
import { parseDocument, stringify } from 'yaml';
import { UsageError } from '../errors.ts';
import { setVersionsInText } from '../registry/edit-registry.ts';
import { MODEL_REGISTRY_FILE, rolloutPath } from '../registry/layout.ts';
import type { RolloutFile, RolloutPolicy, RolloutState } from '../registry/schema.ts';

export interface StepChange {
  path: string;
  /** null deletes the file. */
  content: string | null;
}

export interface Step {
  message: string;
  changes: StepChange[];
}

/** The rollout file with `state` replaced, everything else as written. */
export function withState(text: string, state: RolloutState): string {
  const doc = parseDocument(text, { version: '1.2' });
  for (const key of ['wave', 'since', 'status'] as const) doc.setIn(['state', key], state[key]);
  if (state.reason !== undefined) doc.setIn(['state', 'reason'], state.reason);
  else if (doc.hasIn(['state', 'reason'])) doc.deleteIn(['state', 'reason']);
  return doc.toString();
}

const title = (r: Pick<RolloutFile, 'model' | 'version'>): string => `Rollout ${r.model} ${r.version}`;

/** `promote` of a model with a policy: the rollout file, first wave reached now. */
export function startStep(model: string, version: string, from: string, policy: RolloutPolicy, now: Date): Step {
  const first = policy.waves[0]!;
  const body = {
    model, version, from,
    waves: policy.waves,
    halt: policy.halt,
    state: { wave: first.name, since: now.toISOString(), status: 'progressing' },
  };
  const text = `# A staged rollout in progress; the rollout controller edits only \`state\` (one commit per step).\n${stringify(body, { version: '1.2', defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'PLAIN', collectionStyle: 'block' })}`;
  return {
    message: `${title({ model, version })}: start, wave ${first.name}\n\nSites of wave ${first.name} move from ${from} to ${version}; every other site stays on ${from}.`,
    changes: [{ path: rolloutPath(model), content: text }],
  };
}

export function advanceStep(r: RolloutFile, text: string, to: string, why: string, now: Date): Step {
  if (!r.waves.some((w) => w.name === to)) throw new UsageError(`${r.model}: no wave ${JSON.stringify(to)}`);
  return {
    message: `${title(r)}: wave ${r.state.wave} → ${to}\n\n${why}.`,
    changes: [{ path: rolloutPath(r.model), content: withState(text, { wave: to, since: now.toISOString(), status: 'progressing' }) }],
  };
}

export function haltStep(r: RolloutFile, text: string, why: string, now: Date): Step {
  return {
    message: `${title(r)}: halt, reached waves back to ${r.from}\n\n${why}.`,
    changes: [{ path: rolloutPath(r.model), content: withState(text, { wave: r.state.wave, since: now.toISOString(), status: 'halted', reason: why }) }],
  };
}

export function pauseStep(r: RolloutFile, text: string, now: Date, reason = 'paused by hand'): Step {
  return {
    message: `${title(r)}: pause at wave ${r.state.wave}\n\nReached waves stay on ${r.version}; no further wave until resumed.`,
    changes: [{ path: rolloutPath(r.model), content: withState(text, { wave: r.state.wave, since: r.state.since, status: 'paused', reason }) }],
  };
}

/** Resume a paused or halted rollout at its wave; a halted one soaks again from now. */
export function resumeStep(r: RolloutFile, text: string, now: Date): Step {
  const since = r.state.status === 'halted' ? now.toISOString() : r.state.since;
  return {
    message: `${title(r)}: resume at wave ${r.state.wave}`,
    changes: [{ path: rolloutPath(r.model), content: withState(text, { wave: r.state.wave, since, status: 'progressing' }) }],
  };
}

/** The end: the version becomes current for everyone and the rollout file goes. */
export function finishStep(r: RolloutFile, registryText: string, why: string): Step {
  return {
    message: `${title(r)}: done, ${r.version} current everywhere\n\n${why}; current_version ${r.version}, previous_version ${r.from}.`,
    changes: [
      { path: MODEL_REGISTRY_FILE, content: setVersionsInText(registryText, r.model, { current: r.version, previous: r.from }) },
      { path: rolloutPath(r.model), content: null },
    ],
  };
}

/** Give up: the file goes, so every site follows current_version (still `from`). */
export function abortStep(r: RolloutFile): Step {
  return {
    message: `${title(r)}: abort, every site back to ${r.from}`,
    changes: [{ path: rolloutPath(r.model), content: null }],
  };
}
