/**
 * The registry as a store last knew it: the commit its last pass applied
 * (else attempted), read from the store's registry cache (a remote registry)
 * or from the local registry it was reconciled from. For commands that must
 * check a site-local decision against the registry without reaching the
 * network (`pin`).
 */
import { existsSync } from 'node:fs';
import { loadRegistry, type Registry } from '../registry/load.ts';
import { CommitSource, findGitDir } from '../registry/source.ts';
import { readState, type StoreLayout } from '../store/index.ts';
import { errorMessage } from '../errors.ts';

export type KnownRegistry =
  | { known: true; registry: Registry; commit: string; description: string }
  | { known: false; why: string };

export async function knownRegistry(layout: StoreLayout): Promise<KnownRegistry> {
  const { state } = await readState(layout).catch(() => ({ state: undefined }));
  const commit = state?.appliedCommit ?? state?.attemptedCommit;
  if (!state || !commit) return { known: false, why: 'no pass has read a registry into this store yet' };
  let gitdir: string | undefined;
  if (existsSync(layout.registryGitDir)) gitdir = layout.registryGitDir;
  else if (state.registry && !/^https?:\/\//i.test(state.registry)) gitdir = await findGitDir(state.registry).then((g) => g.gitdir, () => undefined);
  if (!gitdir) return { known: false, why: `the registry ${state.registry ?? ''} at ${commit.slice(0, 12)} cannot be read from this machine` };
  try {
    const source = await CommitSource.open({ gitdir }, commit);
    const { registry } = await loadRegistry(source, { checkContent: false });
    return { known: true, registry, commit, description: state.registry ?? gitdir };
  } catch (err) {
    return { known: false, why: `the registry at ${commit.slice(0, 12)} cannot be read: ${errorMessage(err)}` };
  }
}
