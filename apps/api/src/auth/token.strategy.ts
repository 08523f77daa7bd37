import { Inject, Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import type { Request } from 'express';
import { Strategy } from 'passport-custom';
import { KilnException, hashSecret, isPlainObject, sameSecret } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { TokenAccess, TokenRefusal, TokensService } from '@kiln/projects';
import { Principal } from './principal';
import { CSRF_HEADER, SessionSubject, UiSession, UiSessions, sessionCookie } from './ui-sessions';

/**
 * The token of a request, wherever IronWorker's clients put it: `Authorization: OAuth <token>`
 * (every client), `Bearer <token>`, `?oauth=<token>` (ironcli, webhooks) or an `oauth` field in a
 * JSON body (PHP).
 */
export function extractToken(req: Request): string | undefined {
  const found = tokenOutsideBody(req);
  if (found) return found;
  const body: unknown = req.body;
  if (isPlainObject(body) && typeof body.oauth === 'string' && body.oauth !== '') return body.oauth;
  return undefined;
}

/** The token of a request's header or query: known before its body is read. */
export function tokenOutsideBody(req: Request): string | undefined {
  const header = req.headers.authorization;
  if (header) {
    const match = /^(?:OAuth|Bearer)\s+(\S+)\s*$/i.exec(header);
    if (match) return match[1];
  }
  const query = req.query.oauth;
  if (typeof query === 'string' && query !== '') return query;
  return undefined;
}

/** Methods a cookie-authenticated request may use without the CSRF header: they change nothing. */
const SAFE_METHODS = new Set(['GET', 'HEAD']);

/** The 401 of a request with no session cookie (the dashboard says nothing of it on sign-in). */
export const NOT_SIGNED_IN = 'Not signed in: no dashboard session cookie';

/** A dashboard session as a request presents it: its id (the cookie), what it holds, who it is. */
export interface PresentedSession {
  id: string;
  session: UiSession;
  principal: Principal;
}

/**
 * Authenticates a request by its token (header, query or body), or, for a request that carries
 * none, by its dashboard session cookie (`UiSessions`): then the session's principal, checked
 * again against its token on every request, and a request other than GET/HEAD must carry the
 * session's CSRF secret in `X-Kiln-CSRF` (403 otherwise). A request with a token ignores the cookie.
 */
@Injectable()
export class TokenStrategy extends PassportStrategy(Strategy, 'kiln-token') {
  constructor(
    private readonly tokens: TokensService,
    private readonly sessions: UiSessions,
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
  ) {
    super();
  }

  async validate(req: Request): Promise<Principal> {
    const token = extractToken(req);
    if (token) return this.principalOf(token);
    if (sessionCookie(req.headers.cookie) === undefined) throw KilnException.unauthorized();
    const { session, principal } = await this.presentedSession(req);
    checkCsrf(req, session);
    return principal;
  }

  /** Who a token lets a request act as; 401 when it is unknown or expired. */
  async principalOf(token: string): Promise<Principal> {
    if (this.config.adminToken && sameSecret(token, this.config.adminToken)) return { admin: true };
    const access = await this.tokens.access(token);
    return principalOfAccess(access);
  }

  /**
   * The live session of the request's cookie, and who it acts as now. 401 when there is none, or
   * when the token it was made from no longer works (revoked, expired, the admin token changed):
   * then the session is deleted.
   */
  async presentedSession(req: Request): Promise<PresentedSession> {
    const id = sessionCookie(req.headers.cookie);
    if (id === undefined) throw KilnException.unauthorized(NOT_SIGNED_IN);
    const session = await this.sessions.get(id);
    if (session === null) {
      throw KilnException.unauthorized(
        'The dashboard session has ended (it expired, or was signed out): sign in again',
      );
    }
    try {
      return { id, session, principal: await this.principalOfSession(session) };
    } catch (error) {
      await this.sessions.delete(id);
      throw error;
    }
  }

  private async principalOfSession(session: SessionSubject): Promise<Principal> {
    if (session.admin) {
      const admin = this.config.adminToken;
      if (admin && sameSecret(hashSecret(admin), session.adminTokenHash)) return { admin: true };
      throw KilnException.unauthorized(
        'The dashboard session has ended: the admin token changed; sign in again',
      );
    }
    const access = await this.tokens.accessById(session.tokenId);
    if (access === 'unknown') {
      throw KilnException.unauthorized(
        'The dashboard session has ended: its token was revoked; sign in again',
      );
    }
    if (access === 'expired') {
      throw KilnException.unauthorized(
        'The dashboard session has ended: its token has expired; sign in again',
      );
    }
    return principalOfAccess(access);
  }
}

/**
 * 403 unless a cookie-authenticated request is a GET/HEAD or carries the session's CSRF secret
 * in `X-Kiln-CSRF` (which another site's page cannot read, so cannot send).
 */
export function checkCsrf(req: Request, session: UiSession): void {
  if (SAFE_METHODS.has(req.method)) return;
  const csrf = req.headers[CSRF_HEADER];
  if (typeof csrf === 'string' && sameSecret(csrf, session.csrf)) return;
  throw KilnException.forbidden(
    "A request signed in by the dashboard's cookie must carry its CSRF secret in X-Kiln-CSRF",
  );
}

function principalOfAccess(access: TokenAccess | TokenRefusal): Principal {
  if (access === 'unknown') throw KilnException.unauthorized();
  if (access === 'expired') throw KilnException.unauthorized('The OAuth token has expired');
  return {
    admin: false,
    projectId: access.projectId,
    tokenId: access.tokenId,
    role: access.role,
    expiresAt: access.expiresAt,
  };
}
