import { CanActivate, ExecutionContext, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import type { Request } from 'express';
import { ErrorCode, KilnException } from '@kiln/common';
import { roleAllows } from '@kiln/projects';
import { Principal } from './principal';
import { requiredRole } from './roles';

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
 */
@Injectable()
export class ProjectGuard extends AuthGuard('kiln-token') {
  constructor(private readonly reflector: Reflector) {
    super();
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    if (isPublic(this.reflector, context)) return true;
    await super.canActivate(context);
    const req = context.switchToHttp().getRequest<Request & { user: Principal }>();
    const caller = req.user;
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
