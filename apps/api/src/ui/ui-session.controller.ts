import { Body, Controller, Delete, Get, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { ErrorCode, FieldReader, KilnException, hashSecret, requireObject } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { RateLimits } from '@kiln/redis';
import { clientAddress } from '../auth/client-address';
import { Public, tooManyFailures } from '../auth/guards';
import { Principal } from '../auth/principal';
import { TokenStrategy, checkCsrf } from '../auth/token.strategy';
import {
  SessionSubject,
  UiSession,
  UiSessions,
  sessionCookie,
  sessionSetCookie,
} from '../auth/ui-sessions';

/** A session as the dashboard reads it: never its id (the cookie is HttpOnly) nor its token. */
function sessionJson(session: UiSession) {
  return {
    csrf: session.csrf,
    admin: session.admin,
    project_id: session.admin ? null : session.projectId,
    role: session.admin ? 'admin' : session.role,
    expires_at: session.expiresAt,
  };
}

/**
 * The dashboard's sessions (`/ui`): a token is exchanged once for an HttpOnly cookie, which the
 * global guard then accepts in its place (see `TokenStrategy`). Public routes: each checks the
 * token or the cookie itself.
 */
@Controller('ui/session')
@Public()
export class UiSessionController {
  constructor(
    private readonly strategy: TokenStrategy,
    private readonly sessions: UiSessions,
    private readonly limits: RateLimits,
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
  ) {}

  /**
   * Signs in with `{"token": …}` (a project token or the admin token), checked as the guard
   * checks a token, failures counted against the address the same way.
   */
  @Post()
  @HttpCode(200)
  async signIn(
    @Body() body: unknown,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ) {
    // JSON only: another site's page can send a form or text/plain cross-site without asking,
    // but not application/json (the browser asks first, and the API allows no other origin), so
    // it cannot sign a visitor in to a project of its own choosing.
    if (!req.is('application/json')) {
      throw KilnException.badRequest('Sign in with a JSON body: Content-Type: application/json');
    }
    const token = new FieldReader(requireObject(body, 'The body')).string('token', 4096);
    if (!token) {
      throw KilnException.badRequest('token is required: a project token or the admin token');
    }
    const address = clientAddress(req);
    const blockedMs = this.limits.blockedFor(address);
    if (blockedMs > 0) throw tooManyFailures(blockedMs);
    let principal: Principal;
    try {
      principal = await this.strategy.principalOf(token);
    } catch (error) {
      if (error instanceof KilnException && error.code === ErrorCode.Unauthorized) {
        const blocked = await this.limits.failed(address);
        if (blocked > 0) throw tooManyFailures(blocked);
      }
      throw error;
    }
    const { id, session } = await this.sessions.create(this.subjectOf(principal));
    res.setHeader(
      'Set-Cookie',
      sessionSetCookie(id, req.secure, this.config.api.uiSessionHours * 3600),
    );
    return sessionJson(session);
  }

  /** The session of the request's cookie; 401 when it has ended. */
  @Get()
  async current(@Req() req: Request) {
    const { session } = await this.strategy.presentedSession(req);
    return sessionJson(session);
  }

  /**
   * Ends the session in Redis and clears the cookie; answered 200 even when it had ended. A live
   * session is ended only with its CSRF secret (403 otherwise), like any other mutating request.
   */
  @Delete()
  async signOut(@Req() req: Request, @Res({ passthrough: true }) res: Response) {
    const id = sessionCookie(req.headers.cookie);
    const session = id === undefined ? null : await this.sessions.get(id);
    if (id !== undefined && session !== null) {
      checkCsrf(req, session);
      await this.sessions.delete(id);
    }
    res.setHeader('Set-Cookie', sessionSetCookie(null, req.secure));
    return {};
  }

  private subjectOf(principal: Principal): SessionSubject {
    if (principal.admin) {
      return { admin: true, adminTokenHash: hashSecret(this.config.adminToken ?? '') };
    }
    return {
      admin: false,
      tokenId: principal.tokenId,
      projectId: principal.projectId,
      role: principal.role,
    };
  }
}
