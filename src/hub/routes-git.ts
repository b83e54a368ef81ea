/**
 * Git smart HTTP: git's own http-backend behind the hub's tokens, with a cap
 * on concurrent git processes (and a per-token share of it), and a ref event
 * for every ref a push moved.
 */
import type { Logger } from '../log.ts';
import type { Identity } from './auth.ts';
import type { EventHub } from './events.ts';
import type { Gate } from './gate.ts';
import { runHttpBackend } from './git-http.ts';
import { HttpError } from './http-util.ts';
import type { HubLimits } from './limits.ts';
import { diffRefs, type RepoStore } from './repos.ts';
import type { RequestContext } from './request.ts';
import { Slots } from './slots.ts';

export interface GitRoutesDeps {
  repos: RepoStore;
  events: EventHub;
  gate: Gate;
  limits: HubLimits;
  logger: Logger;
  /** Whether the hub has a tokens file (without one, every local client is one identity). */
  hasTokens: () => boolean;
  countRefEvent: () => void;
}

export class GitRoutes {
  readonly slots: Slots;
  /** Per token, its share of the git slots: past it a token's requests wait, taking no global slot. */
  private readonly byToken = new Map<string, Slots>();

  constructor(private readonly d: GitRoutesDeps) {
    this.slots = new Slots(d.limits.gitProcesses, d.limits.gitQueue);
  }

  async handle(ctx: RequestContext, repo: string, rest: string): Promise<void> {
    const service = rest === 'info/refs' ? ctx.url.searchParams.get('service') : rest;
    if (rest === 'info/refs' && service !== 'git-upload-pack' && service !== 'git-receive-pack') {
      throw new HttpError(403, 'DumbProtocol', 'only the smart HTTP protocol is served (git ≥ 1.6.6)');
    }
    const push = service === 'git-receive-pack';
    const who = this.d.gate.authorize(ctx, push ? 'publisher' : 'site');
    if (push) {
      if (await this.d.repos.ensure(repo)) this.d.logger.info({ repo, who: who.name }, 'repository created by push');
    } else if (!(await this.d.repos.exists(repo))) {
      throw new HttpError(404, 'RepoNotFound', `repository ${repo} not found`);
    }
    // git http-backend reads the *last* `service=` of a query, URLSearchParams
    // the first: hand git exactly the service that was authorised, nothing else.
    const backend = {
      projectRoot: this.d.repos.reposDir,
      pathInfo: `/${repo}.git/${rest}`,
      query: rest === 'info/refs' ? `service=${service}` : '',
      remoteUser: who.name,
      maxBodyBytes: this.d.limits.gitBodyBytes,
      logger: this.d.logger,
    };
    const gone = new Promise<void>((resolve) => ctx.res.once('close', () => resolve()));
    // Loopback mode has one identity for every local client: only the global cap there.
    const release = await this.slot(this.d.hasTokens() ? who.name : null, gone);
    if (!release) {
      if (ctx.res.destroyed) return;
      throw new HttpError(503, 'TooManyGitRequests', 'the hub is busy with other git requests; retry shortly', { 'Retry-After': '5' });
    }
    try {
      await this.run(ctx, repo, rest, who, backend);
    } finally {
      release();
    }
  }

  /**
   * A git process slot for a request by token `name` (null: no per-token
   * share); null if a queue is full or the client left while waiting. The
   * token's share comes first (waiting there holds no global slot), so one
   * token dripping request bodies slowly holds at most its share and a
   * publisher still pushes; agents sharing a token queue rather than fail.
   */
  private async slot(name: string | null, gone: Promise<void>): Promise<(() => void) | null> {
    if (name === null) return this.slots.acquire(gone);
    const share = this.byToken.get(name) ?? new Slots(this.d.limits.gitProcessesPerToken, this.d.limits.gitQueue);
    this.byToken.set(name, share);
    const releaseShare = await share.acquire(gone);
    const release = releaseShare && (await this.slots.acquire(gone));
    const done = (): void => {
      releaseShare?.();
      // An idle share is dropped, so the map holds only tokens with git requests under way.
      if (share.inUse === 0 && share.queued === 0 && this.byToken.get(name) === share) this.byToken.delete(name);
    };
    if (!release) {
      done();
      return null;
    }
    return () => {
      release();
      done();
    };
  }

  private async run(ctx: RequestContext, repo: string, rest: string, who: Identity, backend: Parameters<typeof runHttpBackend>[2]): Promise<void> {
    if (rest !== 'git-receive-pack') {
      await runHttpBackend(ctx.req, ctx.res, backend);
      return;
    }
    // Hold the repo's lock across the push so the ref diff is this push's
    // alone, and publish before the response ends so a client whose push
    // returned can rely on the event being out.
    await this.d.repos.withLock(repo, async () => {
      const before = await this.d.repos.refs(repo);
      let published = false;
      const publish = async (): Promise<void> => {
        if (published) return;
        published = true;
        const after = await this.d.repos.refs(repo);
        const changes = diffRefs(before, after);
        if (changes.length === 0) return;
        await this.d.repos.repairHead(repo, after).catch((err: Error) => this.d.logger.warn({ repo, err: err.message }, 'could not repair HEAD'));
        const at = new Date().toISOString();
        for (const c of changes) {
          const id = this.d.events.publish({ repo, ref: c.ref, before: c.before, after: c.after, at });
          this.d.countRefEvent();
          this.d.logger.info({ repo, ref: c.ref, before: c.before, after: c.after, who: who.name, id }, 'ref updated');
        }
      };
      try {
        await runHttpBackend(ctx.req, ctx.res, { ...backend, beforeEnd: publish });
      } finally {
        // Refs may have moved even if the response failed (client gone mid-report).
        await publish();
      }
    });
  }
}
