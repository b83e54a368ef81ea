/**
 * The schedule a daemon would follow, worked out without running it: for the
 * systemd timer, which cannot learn the site file's schedule from a pass.
 *
 * Same order as the daemon: agent.yaml's `schedule` (or --schedule,
 * MODELSYNC_SCHEDULE) if set; else the site file's (merged over its groups)
 * at the branch's tip, read with a quick shallow fetch into a temporary
 * directory (or directly from a local registry); else the default. When the
 * registry cannot be read, the site's schedule recorded by the store's last
 * pass is used, and failing that the default, each with a note saying so.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from '../errors.ts';
import { silentLogger } from '../log.ts';
import { openRegistry } from '../reconcile/registry-access.ts';
import { resolveSite } from '../registry/desired.ts';
import { siteFilePath } from '../registry/layout.ts';
import { loadRegistry } from '../registry/load.ts';
import { verifyFetchedRegistry } from '../trust/index.ts';
import { StoreLayout, readState } from '../store/index.ts';
import type { AgentConfig } from './config.ts';
import { DEFAULT_SCHEDULE } from './schedule.ts';

export interface ScheduleChoice {
  schedule: string;
  source: 'agent-config' | 'site' | 'store' | 'default';
  /** One sentence: which schedule, from where, and why that one. */
  note: string;
}

export interface ScheduleDeps {
  token?: string;
  /** How long the registry may stay silent (default 15 s: this is a quick look, not a pass). */
  timeoutMs?: number;
}

export async function effectiveSchedule(cfg: AgentConfig, deps: ScheduleDeps = {}): Promise<ScheduleChoice> {
  if (cfg.schedule !== undefined) {
    const from = cfg.sources?.schedule ?? 'agent.yaml';
    return { schedule: cfg.schedule, source: 'agent-config', note: `schedule "${cfg.schedule}" from ${from} (it overrides the site file's)` };
  }
  const file = siteFilePath(cfg.site);
  let why: string;
  try {
    const { schedule, commit } = await siteSchedule(cfg, deps);
    if (schedule !== undefined) {
      return { schedule, source: 'site', note: `schedule "${schedule}" from ${file} at registry commit ${commit.slice(0, 12)} (agent.yaml sets none; --schedule overrides)` };
    }
    return { schedule: DEFAULT_SCHEDULE, source: 'default', note: `schedule "${DEFAULT_SCHEDULE}", the default: neither agent.yaml nor ${file} (with its groups) sets one (--schedule overrides)` };
  } catch (err) {
    why = errorMessage(err).split('\n')[0]!;
  }
  const recorded = await recordedSiteSchedule(cfg.store);
  if (recorded) {
    const schedule = recorded.schedule ?? DEFAULT_SCHEDULE;
    const what = recorded.schedule !== undefined ? `from ${file}` : `the default (${file} set none)`;
    return {
      schedule, source: recorded.schedule !== undefined ? 'store' : 'default',
      note: `schedule "${schedule}", ${what} as the store's last pass read it at commit ${recorded.commit.slice(0, 12)}; the registry could not be read now (${why}); --schedule overrides`,
    };
  }
  return {
    schedule: DEFAULT_SCHEDULE, source: 'default',
    note: `schedule "${DEFAULT_SCHEDULE}", the default: the registry could not be read to find ${file}'s schedule (${why}); give --schedule to be sure`,
  };
}

async function siteSchedule(cfg: AgentConfig, deps: ScheduleDeps): Promise<{ schedule?: string; commit: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'modelsync-schedule-'));
  try {
    const opened = await openRegistry(
      { registry: cfg.registry, branch: cfg.branch, token: deps.token, timeoutMs: deps.timeoutMs ?? 15_000 },
      { cacheDir: join(dir, 'registry.git'), logger: silentLogger },
    );
    // A tip this site would refuse does not choose its timer either (the store's last verified pass does).
    if (cfg.verify) await verifyFetchedRegistry({ settings: { ...cfg.verify, mode: 'tip' }, gitdir: opened.gitdir, tip: opened.commit, now: () => new Date(), logger: silentLogger });
    const { registry, problems } = await loadRegistry(opened.source, { checkContent: false });
    const own = problems.filter((p) => p.file.startsWith('sites/'));
    if (own.length > 0) throw new Error(`the site files are invalid at ${opened.commit.slice(0, 12)}: ${own[0]!.file}:${own[0]!.line}: ${own[0]!.message}`);
    return { schedule: resolveSite(registry, cfg.site).schedule, commit: opened.commit };
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

async function recordedSiteSchedule(store: string): Promise<{ schedule?: string; commit: string } | undefined> {
  try {
    const { state } = await readState(new StoreLayout(store));
    const snap = state.snapshot;
    if (!snap) return undefined;
    const schedule = (snap.resolvedSite as { schedule?: unknown }).schedule;
    return { schedule: typeof schedule === 'string' ? schedule : undefined, commit: snap.commit };
  } catch {
    return undefined;
  }
}
