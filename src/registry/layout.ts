/** Where things live in a registry repo (see DESIGN.md, "Registry repo layout"). */
export const REGISTRY_DIR = 'registry';
export const MODEL_REGISTRY_FILE = 'registry/model_registry.yaml';
export const SITES_DIR = 'sites';
export const GROUPS_DIR = 'sites/groups';
export const TEMPLATES_DIR = 'templates';
export const HOOKS_DIR = 'hooks';
export const MANIFEST_NAME = 'manifest.yaml';

export const modelDir = (model: string): string => `${REGISTRY_DIR}/${model}`;
export const versionDir = (model: string, version: string): string => `${REGISTRY_DIR}/${model}/${version}`;
export const manifestPath = (model: string, version: string): string => `${versionDir(model, version)}/${MANIFEST_NAME}`;
export const versionFilePath = (model: string, version: string, name: string): string => `${versionDir(model, version)}/${name}`;
export const siteFilePath = (site: string): string => `${SITES_DIR}/${site}.yaml`;
/** `extends: [groups/outposts]` names `sites/groups/outposts.yaml`; `extends: [alpha]` names `sites/alpha.yaml`. */
export const extendsPath = (ref: string): string => `${SITES_DIR}/${ref}.yaml`;
