/** Where things live in a registry repo (see DESIGN.md, "Registry repo layout"). */
export const REGISTRY_DIR = 'registry';
export const MODEL_REGISTRY_FILE = 'registry/model_registry.yaml';
export const SITES_DIR = 'sites';
export const GROUPS_DIR = 'sites/groups';
export const TEMPLATES_DIR = 'templates';
export const HOOKS_DIR = 'hooks';
export const MANIFEST_NAME = 'manifest.yaml';

/** Rollouts in progress live here; no model may be called this. */
export const ROLLOUTS_NAME = 'rollouts';
export const ROLLOUTS_DIR = `${REGISTRY_DIR}/${ROLLOUTS_NAME}`;
export const rolloutPath = (model: string): string => `${ROLLOUTS_DIR}/${model}.yaml`;
export const modelDir = (model: string): string => `${REGISTRY_DIR}/${model}`;
export const versionDir = (model: string, version: string): string => `${REGISTRY_DIR}/${model}/${version}`;
export const manifestPath = (model: string, version: string): string => `${versionDir(model, version)}/${MANIFEST_NAME}`;
export const versionFilePath = (model: string, version: string, name: string): string => `${versionDir(model, version)}/${name}`;
export const siteFilePath = (site: string): string => `${SITES_DIR}/${site}.yaml`;
/** `extends: [groups/outposts]` names `sites/groups/outposts.yaml`; `extends: [alpha]` names `sites/alpha.yaml`. */
export const extendsPath = (ref: string): string => `${SITES_DIR}/${ref}.yaml`;

/**
 * A reserved folder inside each version: publish stores the chunk index of
 * each large file there (`.chunks/<file name>.cdc`, an LFS pointer), so a
 * stock `git push` uploads it with the model files. Manifest file names may
 * not use it.
 */
export const CHUNKS_DIR = '.chunks';
export const CHUNK_INDEX_SUFFIX = '.cdc';
/** Where the chunk index of file `name` lives, relative to its version folder. */
export const chunkIndexRelPath = (name: string): string => `${CHUNKS_DIR}/${name}${CHUNK_INDEX_SUFFIX}`;
export const chunkIndexPath = (model: string, version: string, name: string): string => `${versionDir(model, version)}/${chunkIndexRelPath(name)}`;
/** A manifest file name that would collide with the reserved folder (folded: on macOS and Windows ".Chunks" is the same folder). */
export const isReservedFileName = (name: string): boolean => {
  const first = name.split('/')[0]!.toLowerCase();
  return first === CHUNKS_DIR;
};
