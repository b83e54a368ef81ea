/**
 * The rollout controller inside `modelsync serve`: for every repository the
 * hub holds, a round every `intervalMs` and soon after a site reports. Steps
 * are committed into the bare repo under the same per-repo lock a push
 * takes, and announced with the ref-changed event a push gets, so agents
 * follow a step as they follow a push.
 */
import * as fs from 'node:fs';
import { readdir } from 'node:fs/promises';
import git from 'isomorphic-git';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { RolloutView } from '../fleet/rollout.ts';
import { ROLLOUTS_DIR } from '../registry/layout.ts';
import { RolloutController } from '../rollout/controller.ts';
import { BareRepo } from '../rollout/repo.ts';
import type { EventHub } from './events.ts';
import { repoNameProblem, type RepoStore } from './repos.ts';
import type { SitesStatus } from './sites-status.ts';

export interface HubRolloutsOptions {
  repos: RepoStore;
  sites: SitesStatus;
  events: EventHub;
  logger: Logger;
  intervalMs: number;
  now?: () => Date;
  /** Called per event published (the hub's ref-event counter). */
  onEvent?: () => void;
}

/** After a report, wait this long for others of the same burst before a round. */
const NUDGE_DEBOUNCE_MS = 200;

export class HubRollouts {
  /** What the last round saw, per repo, for GET /api/v1/rollouts and the dashboard. */
  private readonly seen = new Map<string, RolloutView[]>();
  private readonly controllers = new Map<string, { branch: string; c: RolloutController }>();
  private timer: NodeJS.Timeout | undefined;
  private nudgeTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly o: HubRolloutsOptions) {}

  start(): void {
    this.timer = setInterval(() => this.nudge(0), this.o.intervalMs);
    this.timer.unref();
  }

  /** A site reported: decide soon (a Degraded canary halts within a fraction of a second, not an interval). */
  nudge(delayMs = NUDGE_DEBOUNCE_MS): void {
    if (this.stopped || this.nudgeTimer) return;
    this.nudgeTimer = setTimeout(() => {
      this.nudgeTimer = undefined;
      void this.round();
    }, delayMs);
    this.nudgeTimer.unref();
  }

  /** One round over every repo; overlapping requests run one more round after it. */
  round(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.roundOnce();
        } while (this.again && !this.stopped);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private async roundOnce(): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.o.repos.reposDir)).filter((n) => n.endsWith('.git')).map((n) => n.slice(0, -4)).filter((n) => !repoNameProblem(n));
    } catch {
      return;
    }
    for (const name of names) {
      if (this.stopped) return;
      try {
        if (!(await this.hasRollouts(name))) {
          this.seen.delete(name);
          continue;
        }
        const c = await this.controllerFor(name);
        await c?.tick();
        this.seen.set(name, c?.views ?? []);
      } catch (err) {
        this.o.logger.warn({ repo: name, err: errorMessage(err) }, 'rollout round failed');
      }
    }
  }

  /** Tips known to hold no registry/rollouts/: most rounds, on most repos, read one ref and stop. */
  private readonly idle = new Map<string, string>();

  private async hasRollouts(name: string): Promise<boolean> {
    const gitdir = this.o.repos.gitDir(name);
    const tip = await git.resolveRef({ fs, gitdir, ref: 'HEAD' }).catch(() => undefined);
    if (!tip) return false;
    if (this.idle.get(name) === tip) return false;
    const found = await git.readTree({ fs, gitdir, oid: tip, filepath: ROLLOUTS_DIR }).then(() => true, () => false);
    if (found) this.idle.delete(name);
    else this.idle.set(name, tip);
    return found;
  }

  private async controllerFor(name: string): Promise<RolloutController | undefined> {
    const gitdir = this.o.repos.gitDir(name);
    const branch = await git.currentBranch({ fs, gitdir }).catch(() => undefined);
    if (!branch) return undefined;
    const known = this.controllers.get(name);
    if (known && known.branch === branch) return known.c;
    const c = new RolloutController({
      repo: new BareRepo(gitdir, branch),
      status: { sites: async () => this.o.sites.list() },
      now: this.o.now ?? (() => new Date()),
      logger: this.o.logger.child({ repo: name }),
      withLock: (fn) => this.o.repos.withLock(name, fn),
      onCommitted: (after, before) => {
        const id = this.o.events.publish({ repo: name, ref: `refs/heads/${branch}`, before, after, at: new Date().toISOString() });
        this.o.onEvent?.();
        this.o.logger.info({ repo: name, ref: `refs/heads/${branch}`, before, after, who: 'rollout controller', id }, 'ref updated');
      },
    });
    this.controllers.set(name, { branch, c });
    return c;
  }

  /** Every rollout in progress on the hub's repos as of the last round, with its waves. */
  views(): Array<RolloutView & { repo: string }> {
    return [...this.seen].sort(([a], [b]) => (a < b ? -1 : 1)).flatMap(([repo, vs]) => vs.map((v) => ({ repo, ...v })));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.nudgeTimer) clearTimeout(this.nudgeTimer);
    await this.running?.catch(() => {});
  }
}
