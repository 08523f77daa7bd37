import { ExecutionContext, Injectable } from '@nestjs/common';
import { AuthGuard } from '@nestjs/passport';
import type { Request } from 'express';
import { ErrorCode, KilnException } from '@kiln/common';
import { Principal } from './principal';

/** Authenticates the token, then lets it act only on its own project (the admin on any). */
@Injectable()
export class ProjectGuard extends AuthGuard('kiln-token') {
  override async canActivate(context: ExecutionContext): Promise<boolean> {
    await super.canActivate(context);
    const req = context.switchToHttp().getRequest<Request & { user: Principal }>();
    const projectId = req.params.projectId;
    if (req.user.admin || projectId === undefined || req.user.projectId === projectId) return true;
    throw KilnException.unauthorized('This token does not grant access to this project');
  }

  // Passport hands validation errors here; keep ours (they carry the right status and msg).
  override handleRequest<T>(error: unknown, user: T): T {
    if (error) throw error instanceof Error ? error : KilnException.unauthorized();
    if (!user) throw KilnException.unauthorized();
    return user;
  }
}

/** Only the admin token (KILN_ADMIN_TOKEN) passes. */
@Injectable()
export class AdminGuard extends ProjectGuard {
  override async canActivate(context: ExecutionContext): Promise<boolean> {
    await super.canActivate(context);
    const req = context.switchToHttp().getRequest<Request & { user: Principal }>();
    if (req.user.admin) return true;
    throw new KilnException(ErrorCode.Forbidden, 'This action needs the admin token');
  }
}
