/**
 * The hub's own API and pages: the event stream, site reports and the fleet
 * list, rollouts, the dashboard, /healthz and /metrics.
 */
import type { IncomingMessage } from 'node:http';
import { createHash } from 'node:crypto';
import { credentialsFrom, maySiteReport, roleAtLeast } from './auth.ts';
import { HistoryCache, serveDashboard } from './dashboard/index.ts';
import type { EventHub } from './events.ts';
import type { Gate } from './gate.ts';
import { HttpError, JSON_TYPE, nestedDeeperThan, readJsonBody, requireMediaType, sendJson } from './http-util.ts';
import type { HubLimits } from './limits.ts';
import type { Metrics } from './metrics.ts';
import { repoNameProblem } from './repos.ts';
import { reportShapeProblem } from './report-shape.ts';
import type { RequestContext } from './request.ts';
import type { HubRollouts } from './rollouts.ts';
import { siteNameProblem, type SitesStatus } from './sites-status.ts';

export interface ApiRoutesDeps {
  gate: Gate;
  events: EventHub;
  sites: SitesStatus;
  rollouts: HubRollouts | undefined;
  history: HistoryCache;
  metrics: Metrics;
  limits: HubLimits;
  hasTokens: () => boolean;
  publicBase: (req: IncomingMessage) => string;
  countAuthFailure: (reason: string) => void;
}

export class ApiRoutes {
  /** Open event streams per token name. */
  private readonly streamsByToken = new Map<string, number>();

  constructor(private readonly d: ApiRoutesDeps) {}

  async index(ctx: RequestContext): Promise<void> {
    // Site tokens are for agents: what every other site runs is for operators.
    this.d.gate.authorize(ctx, 'publisher');
    await serveDashboard(ctx.res, { sites: this.d.sites, history: this.d.history, base: this.d.publicBase(ctx.req), head: ctx.req.method === 'HEAD' });
  }

  async healthz(ctx: RequestContext): Promise<void> {
    if (!this.d.hasTokens()) this.d.gate.identify(ctx);
    sendJson(ctx.res, 200, { ok: true });
  }

  async metricsPage(ctx: RequestContext): Promise<void> {
    if (!this.d.hasTokens()) this.d.gate.identify(ctx);
    const text = this.d.metrics.render();
    ctx.res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
    ctx.res.end(text);
  }

  async eventStream(ctx: RequestContext): Promise<void> {
    this.d.gate.authorize(ctx, 'site');
    const repo = ctx.url.searchParams.get('repo');
    if (repo !== null && repoNameProblem(repo)) throw new HttpError(400, 'InvalidRepoName', `invalid repo filter: ${repoNameProblem(repo)}`);
    const header = ctx.req.headers['last-event-id'];
    const lastId = (typeof header === 'string' ? header : undefined) ?? ctx.url.searchParams.get('lastEventId') ?? undefined;
    const who = ctx.who!;
    // Site events name every site and its condition: operators' business, not a site token's.
    const sites = ctx.url.searchParams.get('sites') === '1';
    if (sites && !roleAtLeast(who.role, 'publisher')) throw new HttpError(403, 'Forbidden', `token "${who.name}" (role ${who.role}) may not follow site events; role publisher is needed`);
    const mine = this.streamsByToken.get(who.name) ?? 0;
    const cap = streamCap(who.sites, this.d.limits.eventSubscribersPerToken);
    // Loopback mode has one identity for every local client: only the global cap applies there.
    if (this.d.hasTokens() && mine >= cap) {
      throw new HttpError(503, 'TooManySubscribers', `token "${who.name}" already holds ${mine} event streams (its limit: ${cap}); close one or retry later`, { 'Retry-After': '30' });
    }
    const creds = this.d.hasTokens() ? credentialsFrom(ctx.req.headers.authorization) : null;
    const token = creds ? createHash('sha256').update(creds.secret, 'utf8').digest('hex') : null;
    if (!this.d.events.subscribe(ctx.req, ctx.res, { repo, lastId, sites, token })) {
      throw new HttpError(503, 'TooManySubscribers', 'too many event subscribers; retry later', { 'Retry-After': '30' });
    }
    // A stream is quiet between heartbeats by design: the idle timeout is not for it.
    ctx.req.socket.setTimeout(0);
    this.streamsByToken.set(who.name, mine + 1);
    ctx.res.once('close', () => {
      const n = (this.streamsByToken.get(who.name) ?? 1) - 1;
      if (n > 0) this.streamsByToken.set(who.name, n);
      else this.streamsByToken.delete(who.name);
    });
  }

  async reportSite(ctx: RequestContext, site: string): Promise<void> {
    const who = this.d.gate.authorize(ctx, 'site');
    const problem = siteNameProblem(site);
    if (problem) throw new HttpError(400, 'InvalidSiteName', `invalid site name: ${problem}`);
    if (!maySiteReport(who, site)) {
      this.d.countAuthFailure('forbidden');
      throw new HttpError(403, 'Forbidden', `token "${who.name}" may not report for site ${site}`);
    }
    requireMediaType(ctx.req, [JSON_TYPE]);
    const body = await readJsonBody(ctx.req, this.d.limits.statusBodyBytes);
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(422, 'InvalidReport', 'a status report must be a JSON object');
    if (nestedDeeperThan(body, this.d.limits.jsonDepth)) throw new HttpError(422, 'InvalidReport', `a status report may nest at most ${this.d.limits.jsonDepth} levels deep`);
    const shape = reportShapeProblem(body as Record<string, unknown>);
    if (shape) throw new HttpError(422, 'InvalidReport', `invalid status report: ${shape}`);
    const rec = await this.d.sites.put(site, body as Record<string, unknown>);
    sendJson(ctx.res, 200, { ok: true, site, receivedAt: rec.receivedAt });
    this.d.rollouts?.nudge();
  }

  async listSites(ctx: RequestContext): Promise<void> {
    const who = this.d.gate.authorize(ctx, 'site');
    // A site token sees only the sites it reports for.
    const filter = roleAtLeast(who.role, 'publisher') ? undefined : (s: string): boolean => maySiteReport(who, s);
    // sendJson's headers and trailing newline, around text the status store keeps serialised.
    const text = `${this.d.sites.listJson(filter)}\n`;
    ctx.res.writeHead(200, { 'Content-Type': `${JSON_TYPE}; charset=utf-8`, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
    ctx.res.end(text);
  }

  async listRollouts(ctx: RequestContext): Promise<void> {
    this.d.gate.authorize(ctx, 'publisher');
    sendJson(ctx.res, 200, { rollouts: this.d.rollouts?.views() ?? [] });
  }
}

/**
 * How many event streams one token may hold: `perToken`, or two per site a
 * site token lists when that is more. A fleet that shares one site token
 * (`sites: [every site]`) runs one agent per site, each holding a stream, and
 * a restarting agent's new stream may open before the hub has seen the old
 * one close; a flat cap of 100 would refuse the 101st site of such a fleet.
 */
export function streamCap(sites: readonly string[] | null, perToken: number): number {
  return Math.max(perToken, 2 * (sites?.length ?? 0));
}
