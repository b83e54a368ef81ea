/**
 * Who is asking, and whether they may: tokens from the tokens file, LFS
 * action tokens the batch response signed for one object, or (without a
 * tokens file) loopback peers only.
 */
import type { Logger } from '../log.ts';
import { ActionTokens, LOOPBACK_IDENTITY, credentialsFrom, roleAtLeast, type ActionOp, type Identity, type Role, type TokenTable } from './auth.ts';
import { HttpError, isLoopback, isLoopbackHost } from './http-util.ts';
import { BASIC_CHALLENGE, type RequestContext } from './request.ts';

export interface GateDeps {
  /** The current token table (it is replaced when the tokens file changes); null: loopback only. */
  tokens: () => TokenTable | null;
  actions: ActionTokens;
  /** Host names besides loopback ones a tokenless hub answers to. */
  publicHosts: readonly string[];
  logger: Logger;
  countAuthFailure: (reason: string) => void;
  /** A mirror's upstream (`serve --mirror`): pushes and uploads are refused, naming it. */
  readOnlyUpstream?: string;
}

/** Routes that write (a push, an LFS upload, its verify, the lock check git-lfs makes before a push). */
const WRITE_ROUTES = new Set(['git-info-refs', 'git-receive-pack', 'lfs-batch', 'lfs-upload', 'lfs-verify', 'lfs-locks']);

export class Gate {
  constructor(private readonly d: GateDeps) {}

  /** Establish the caller's identity and require `role`; throws 401/403. */
  authorize(ctx: RequestContext, role: Role): Identity {
    // On these routes only writing needs more than a site's role. Refused before
    // credentials are asked for: no token makes a mirror writable.
    if (this.d.readOnlyUpstream !== undefined && role !== 'site' && WRITE_ROUTES.has(ctx.route.name)) {
      throw new HttpError(403, 'ReadOnlyMirror', `this hub is a read-only mirror of ${this.d.readOnlyUpstream}: push and upload there`);
    }
    const who = this.identify(ctx);
    if (!roleAtLeast(who.role, role)) {
      this.d.countAuthFailure('forbidden');
      this.d.logger.info({ who: who.name, role: who.role, needed: role, route: ctx.route.name, repo: ctx.route.repo }, 'request refused: role insufficient');
      throw new HttpError(403, 'Forbidden', `token "${who.name}" (role ${who.role}) may not do this; role ${role} is needed`);
    }
    ctx.who = who;
    return who;
  }

  identify(ctx: RequestContext): Identity {
    const tokens = this.d.tokens();
    if (!tokens) {
      if (!isLoopback(ctx.req.socket.remoteAddress)) {
        this.d.countAuthFailure('not-loopback');
        throw new HttpError(403, 'Forbidden', 'this hub runs without a tokens file and serves loopback clients only');
      }
      if (!isLoopbackHost(ctx.req.headers.host, this.d.publicHosts)) {
        this.d.countAuthFailure('foreign-host');
        throw new HttpError(403, 'Forbidden', 'this hub runs without a tokens file and answers only to loopback host names (localhost, 127.0.0.1, [::1]) or --public-url');
      }
      return LOOPBACK_IDENTITY;
    }
    const creds = credentialsFrom(ctx.req.headers.authorization);
    if (!creds) {
      this.d.countAuthFailure('missing');
      throw new HttpError(401, 'Unauthorized', 'credentials required (a token as the HTTP Basic password or as a Bearer token)', { 'WWW-Authenticate': BASIC_CHALLENGE });
    }
    const who = tokens.authenticate(creds.secret);
    if (!who) {
      this.d.countAuthFailure('invalid');
      throw new HttpError(401, 'Unauthorized', 'invalid token', { 'WWW-Authenticate': BASIC_CHALLENGE });
    }
    return who;
  }

  /**
   * LFS object routes also accept the action token the batch response signed
   * for exactly this object; returns the size that grant bound an upload to.
   */
  authorizeObject(ctx: RequestContext, repo: string, oid: string, op: ActionOp): { size?: number } {
    const creds = credentialsFrom(ctx.req.headers.authorization);
    if (creds && ActionTokens.looksLikeOne(creds.secret)) {
      const grant = this.d.actions.grant(creds.secret, { repo, oid, op });
      if (grant) {
        ctx.who = { name: `action:${op}`, role: op === 'upload' ? 'publisher' : 'site', sites: [] };
        return { size: grant.size };
      }
      this.d.countAuthFailure('invalid-action');
      throw new HttpError(401, 'Unauthorized', 'expired or invalid action token; request the batch endpoint again', { 'WWW-Authenticate': BASIC_CHALLENGE });
    }
    this.authorize(ctx, op === 'upload' ? 'publisher' : 'site');
    return {};
  }
}
