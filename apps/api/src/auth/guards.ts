import { CanActivate, ExecutionContext, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import type { Request } from 'express';
import { ErrorCode, KilnException } from '@kiln/common';
import { roleAllows } from '@kiln/projects';
import { RateLimits } from '@kiln/redis';
import { BodyReader } from '../http/body.interceptor';
import { clientAddress } from './client-address';
import { Principal } from './principal';
import { requiredRole } from './roles';
import { tokenOutsideBody } from './token.strategy';

const PUBLIC = 'kiln:public';

/**
 * Marks a route that needs no project token: `/healthz`, and the trigger URLs (their own secret
 * authenticates). Every other route is guarded by {@link ProjectGuard}, installed globally.
 */
export const Public = () => SetMetadata(PUBLIC, true);

/** True when `handler` (a controller method) or its controller is marked {@link Public}. */
export function isPublic(reflector: Reflector, context: ExecutionContext): boolean {
  return (
    reflector.getAllAndOverride<boolean>(PUBLIC, [context.getHandler(), context.getClass()]) ===
    true
  );
}

/**
 * The API's global guard (APP_GUARD): authenticates the token, lets it act only on its own
 * project (the admin on any), and only as its role allows (each route's role: `roles.ts`).
 * Routes marked {@link Public} pass without a token.
 *
 * It runs before any body is read (`BodyInterceptor` reads them afterwards): a token comes from
 * the header or query, and only a request with neither has its body read for one, up to 64 KiB.
 * It also applies the rate limits (`RateLimits`): an address that failed to authenticate too
 * often is refused before its token is even looked up, and each project token has its bucket.
 */
@Injectable()
export class ProjectGuard extends AuthGuard('kiln-token') {
  constructor(
    private readonly reflector: Reflector,
    private readonly body: BodyReader,
    private readonly limits: RateLimits,
  ) {
    super();
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    if (isPublic(this.reflector, context)) return true;
    const req = context.switchToHttp().getRequest<Request & { user: Principal }>();
    const address = clientAddress(req);
    const blockedMs = this.limits.blockedFor(address);
    if (blockedMs > 0) throw tooManyFailures(blockedMs);
    if (!tokenOutsideBody(req)) await this.body.readForToken(req, this.body.kindOf(context));
    try {
      await super.canActivate(context);
    } catch (error) {
      if (error instanceof KilnException && error.code === ErrorCode.Unauthorized) {
        const blocked = await this.limits.failed(address);
        if (blocked > 0) throw tooManyFailures(blocked);
      }
      throw error;
    }
    const caller = req.user;
    const admission = await this.limits.admit(address, caller.admin ? null : caller.tokenId);
    if (!admission.allowed) {
      throw admission.reason === 'address'
        ? tooManyFailures(admission.retryAfterMs)
        : KilnException.tooManyRequests(
            'Too many requests with this token: slow down and retry after the time in Retry-After',
            admission.retryAfterMs / 1000,
          );
    }
    if (caller.admin) return true;
    const projectId = req.params.projectId;
    if (projectId !== undefined && caller.projectId !== projectId) {
      throw KilnException.unauthorized('This token does not grant access to this project');
    }
    const needed = requiredRole(context.getHandler(), context.getClass());
    if (!roleAllows(caller.role, needed)) {
      throw KilnException.forbidden(
        `This token's role is ${caller.role}; this action needs ${needed}${needed === 'manage' ? '' : ' or manage'}`,
      );
    }
    return true;
  }

  // Passport hands validation errors here; keep ours (they carry the right status and msg).
  override handleRequest<T>(error: unknown, user: T): T {
    if (error) throw error instanceof Error ? error : KilnException.unauthorized();
    if (!user) throw KilnException.unauthorized();
    return user;
  }
}

/** The 429 of an address blocked for its failed authentications. */
export function tooManyFailures(blockedMs: number): KilnException {
  return KilnException.tooManyRequests(
    'Too many failed authentications from this address: retry after the time in Retry-After',
    blockedMs / 1000,
  );
}

/**
 * Only the admin token (KILN_ADMIN_TOKEN) passes: per route, after the global guard has
 * authenticated the token (global guards run first), so it only reads who the caller is.
 */
@Injectable()
export class AdminGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<Request & { user: Principal }>();
    if (req.user.admin) return true;
    throw new KilnException(ErrorCode.Forbidden, 'This action needs the admin token');
  }
}
