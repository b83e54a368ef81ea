/** What loading a registry snapshot yields. */
import type { Problem } from '../errors.ts';
import { ManifestFile, ModelEntry, SiteFile, type VersionScheme } from './schema.ts';
import { type YamlFile } from './yaml-file.ts';
import { type RolloutDoc } from './rollouts.ts';

export interface VersionInfo {
  model: string;
  version: string;
  manifest: ManifestFile;
  /** Repo-relative path of manifest.yaml. */
  file: string;
  yaml: YamlFile;
}

export interface ModelInfo {
  name: string;
  /** The entry in model_registry.yaml; undefined for a model folder no entry declares (published, not released). */
  entry?: ModelEntry;
  /** Declared or inferred; null when the versions follow no single scheme. */
  scheme: VersionScheme | null;
  /** Versions whose manifest parsed, by version. */
  versions: Map<string, VersionInfo>;
  /** Version folders whose manifest is broken (reported already; not "missing"). */
  broken: Set<string>;
}

export interface SiteDoc {
  name: string;
  file: string;
  data: SiteFile;
  yaml: YamlFile;
}

export interface Registry {
  /** What was read ("commit 1a2b…", "working tree"). */
  description: string;
  commit?: string;
  models: Map<string, ModelInfo>;
  sites: Map<string, SiteDoc>;
  /** Group files by their `extends` reference (`groups/outposts`). */
  groups: Map<string, SiteDoc>;
  /** Staged rollouts in progress (registry/rollouts/<model>.yaml), by model. */
  rollouts: Map<string, RolloutDoc>;
  modelRegistryYaml?: YamlFile;
}

export interface LoadOptions {
  /**
   * Whether to check each file's bytes or pointer against its manifest.
   * Reconcile checks only what the site will fetch (and verifies bytes anyway);
   * `validate` checks everything.
   */
  checkContent?: boolean | ((model: string, version: string) => boolean);
}

export interface LoadResult {
  registry: Registry;
  problems: Problem[];
}

