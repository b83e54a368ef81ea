/**
 * Every name in the parts of a registry tree modelsync reads (the root's
 * entries, and everything below registry/, sites/ and templates/) must be
 * one a checkout can hold: a name git can store but no checkout should
 * (`notes\readme.txt`, `..`, `.GIT`, a control character) is a problem
 * naming its path, so one bad commit stops that commit and nothing else.
 * Other top-level directories are never read by modelsync (nor fetched into
 * a site's files), so their names are left to git.
 */
import type { Problem } from '../errors.ts';
import { unsafeTreeNameReason } from '../util/tree-name.ts';
import { REGISTRY_DIR, SITES_DIR, TEMPLATES_DIR } from './layout.ts';
import type { RegistrySource } from './source.ts';

const WALKED = new Set([REGISTRY_DIR, SITES_DIR, TEMPLATES_DIR]);
/** A registry holds manifests and pointers; a tree this big is a mistake or an attack. */
const MAX_ENTRIES = 200_000;

export async function treeNameProblems(source: RegistrySource): Promise<Problem[]> {
  const problems: Problem[] = [];
  let seen = 0;
  const stack: string[] = [''];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    for (const e of (await source.list(dir)) ?? []) {
      const path = dir === '' ? e.name : `${dir}/${e.name}`;
      if (++seen > MAX_ENTRIES) {
        problems.push({ file: dir === '' ? '.' : `${dir}/`, line: 1, col: 1, path: '', message: `the tree holds more than ${MAX_ENTRIES} entries below ${[...WALKED].join('/, ')}/; not checked further` });
        return problems;
      }
      const why = unsafeTreeNameReason(e.name);
      if (why) {
        problems.push({ file: e.type === 'dir' ? `${path}/` : path, line: 1, col: 1, path: '', message: `unsafe name in the registry tree: ${why}; rename or remove it (every site refuses this commit)` });
        continue;
      }
      if (e.type === 'dir' && (dir !== '' || WALKED.has(e.name))) stack.push(path);
    }
  }
  return problems.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

/** The source as the loader reads it: entries with unsafe names (reported above) are not there. */
export function withoutUnsafeNames(source: RegistrySource): RegistrySource {
  return {
    description: source.description,
    commit: source.commit,
    readText: (p) => source.readText(p),
    inspect: (p) => source.inspect(p),
    list: async (dir) => (await source.list(dir))?.filter((e) => unsafeTreeNameReason(e.name) === null) ?? null,
  };
}
