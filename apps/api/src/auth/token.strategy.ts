import { Inject, Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import type { Request } from 'express';
import { Strategy } from 'passport-custom';
import { KilnException, isPlainObject, sameSecret } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { TokensService } from '@kiln/projects';
import { Principal } from './principal';

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

@Injectable()
export class TokenStrategy extends PassportStrategy(Strategy, 'kiln-token') {
  constructor(
    private readonly tokens: TokensService,
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
  ) {
    super();
  }

  async validate(req: Request): Promise<Principal> {
    const token = extractToken(req);
    if (!token) throw KilnException.unauthorized();
    if (this.config.adminToken && sameSecret(token, this.config.adminToken)) return { admin: true };
    const access = await this.tokens.access(token);
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
}
