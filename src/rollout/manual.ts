/**
 * What people do to a rollout (`modelsync rollout advance|pause|resume|abort`,
 * and `promote` of a model with a policy, which starts one): the same steps
 * the controller commits, one commit each.
 */
import { NotFoundError, UsageError, ValidationError, formatProblem } from '../errors.ts';
import { MODEL_REGISTRY_FILE } from '../registry/layout.ts';
import type { RolloutDoc } from '../registry/rollouts.ts';
import type { RolloutHead, RolloutRepo } from './repo.ts';
import { abortStep, advanceStep, finishStep, pauseStep, resumeStep, startStep, type Step } from './steps.ts';

export type ManualAction = 'advance' | 'pause' | 'resume' | 'abort';

export interface StepResult {
  model: string;
  commit: string;
  message: string;
}

async function validHead(repo: RolloutRepo): Promise<RolloutHead> {
  const head = await repo.head();
  if (!head) throw new UsageError(`${repo.name}: the branch has no commits`);
  if (head.problems.length) throw new ValidationError(head.problems, `the registry at ${head.commit.slice(0, 12)} is invalid (${formatProblem(head.problems[0]!)}); fix it first`);
  return head;
}

function rolloutOf(head: RolloutHead, model: string): RolloutDoc {
  const doc = head.registry.rollouts.get(model);
  if (!doc) {
    const others = [...head.registry.rollouts.keys()];
    throw new NotFoundError(`no rollout of ${model} is in progress${others.length ? ` (in progress: ${others.join(', ')})` : ''}`, { model });
  }
  return doc;
}

export async function manualStep(repo: RolloutRepo, model: string, action: ManualAction, now: Date): Promise<StepResult> {
  const head = await validHead(repo);
  const doc = rolloutOf(head, model);
  const r = doc.data;
  const text = (await head.source.readText(doc.file)) ?? '';
  let step: Step;
  const status = r.state.status;
  if (action === 'advance') {
    if (status === 'halted') throw new UsageError(`the rollout of ${model} is halted (${r.state.reason ?? 'no reason recorded'}); resume it first`);
    const at = r.waves.findIndex((w) => w.name === r.state.wave);
    step = at === r.waves.length - 1
      ? finishStep(r, (await head.source.readText(MODEL_REGISTRY_FILE)) ?? '', 'advanced by hand past the last wave')
      : advanceStep(r, text, r.waves[at + 1]!.name, 'advanced by hand', now);
  } else if (action === 'pause') {
    if (status !== 'progressing') throw new UsageError(`the rollout of ${model} is ${status}, not progressing`);
    step = pauseStep(r, text, now);
  } else if (action === 'resume') {
    if (status === 'progressing') throw new UsageError(`the rollout of ${model} is progressing already`);
    step = resumeStep(r, text, now);
  } else {
    step = abortStep(r);
  }
  const commit = await repo.apply(step, head.commit);
  return { model, commit, message: step.message };
}

/** `promote` of a model whose entry has `rollout:`: the rollout file, from the current version. */
export async function startRollout(repo: RolloutRepo, model: string, version: string, now: Date): Promise<StepResult> {
  const head = await validHead(repo);
  const existing = head.registry.rollouts.get(model);
  if (existing) {
    throw new UsageError(`a rollout of ${model} ${existing.data.version} is in progress (${existing.data.state.status} at wave ${existing.data.state.wave}); \`modelsync rollout abort ${model}\` first, or promote --now`);
  }
  const info = head.registry.models.get(model);
  const policy = info?.entry?.rollout;
  if (!info?.entry || !policy) throw new UsageError(`${model} has no rollout policy in ${MODEL_REGISTRY_FILE}`);
  if (!info.versions.has(version)) throw new NotFoundError(`${model} ${version} is not published (published: ${[...info.versions.keys()].join(', ')})`, { model, version });
  const from = info.entry.current_version;
  if (from === version) throw new UsageError(`${model} ${version} is already current`);
  const step = startStep(model, version, from, policy, now);
  const commit = await repo.apply(step, head.commit);
  return { model, commit, message: step.message };
}

/** For `promote --now` over a rollout in progress: the abort commit, if there was one. */
export async function abortIfRunning(repo: RolloutRepo, model: string, now: Date): Promise<StepResult | undefined> {
  const head = await validHead(repo);
  if (!head.registry.rollouts.has(model)) return undefined;
  return manualStep(repo, model, 'abort', now);
}
