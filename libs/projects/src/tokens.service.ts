import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { IsNull, Repository } from 'typeorm';
import {
  KilnException,
  RecentValues,
  TOKEN_PREFIX,
  hashSecret,
  newId,
  newSecret,
} from '@kiln/common';
import { Token } from './token.entity';
import type { TokenRole } from './token-roles';
import type { TokenSpec } from './token-spec';
import { ProjectsService } from './projects.service';

export interface IssuedToken {
  token: Token;
  /** The secret; shown to its owner once and never stored. */
  secret: string;
}

/** Who a live token lets a request act as. */
export interface TokenAccess {
  tokenId: string;
  projectId: string;
  role: TokenRole;
  /** Null: never expires. Checked on every request, cached or not. */
  expiresAt: Date | null;
}

/** Why a token did not authenticate; each is a 401. */
export type TokenRefusal = 'unknown' | 'expired';

/**
 * How long a replica trusts what it read of a token. A revocation also reaches every replica at
 * once over Redis (`forgetTokens`, wired in the API); this bound is what holds when that message is
 * lost (Redis away), so a revoked token stops working everywhere within about a second.
 */
export const TOKEN_CACHE_MS = 1000;
const TOKEN_CACHE_MAX = 10_000;
/** `last_used_at` is written at most this often per token and replica (the read path is hot). */
export const LAST_USE_WRITE_MS = 60_000;

@Injectable()
export class TokensService {
  private readonly logger = new Logger(TokensService.name);
  private readonly known = new RecentValues<TokenAccess>(TOKEN_CACHE_MS, TOKEN_CACHE_MAX);
  /** Bumped by every revocation heard: a look-up that began before one is not cached. */
  private generation = 0;
  /** When this replica last wrote each token's `last_used_at` (ms). */
  private readonly lastUseWritten = new Map<string, number>();

  constructor(
    @InjectRepository(Token) private readonly tokens: Repository<Token>,
    private readonly projects: ProjectsService,
  ) {}

  async issue(projectId: string, spec: TokenSpec): Promise<IssuedToken> {
    await this.projects.get(projectId);
    const secret = newSecret(TOKEN_PREFIX);
    const token = this.tokens.create({
      id: newId(),
      projectId,
      tokenHash: hashSecret(secret),
      name: spec.name,
      role: spec.role,
      expiresAt: spec.expiresAt,
      lastUsedAt: null,
      revokedAt: null,
    });
    return { token: await this.tokens.save(token), secret };
  }

  /** The project's tokens that are not revoked (expired ones included), oldest first. */
  async list(projectId: string): Promise<Token[]> {
    await this.projects.get(projectId);
    return this.tokens.find({
      where: { projectId, revokedAt: IsNull() },
      order: { createdAt: 'ASC', id: 'ASC' },
    });
  }

  /**
   * Revokes a token of the project: 404 when the project has no such live token (another
   * project's id included), and then nothing changes. This replica forgets it at once; the
   * caller tells the others (`TokenSignals`).
   */
  async revoke(projectId: string, tokenId: string): Promise<void> {
    const revoked = await this.tokens
      .createQueryBuilder()
      .update()
      .set({ revokedAt: () => 'now()' })
      .where('id = :tokenId AND project_id = :projectId AND revoked_at IS NULL', {
        tokenId,
        projectId,
      })
      .execute();
    if (!revoked.affected) throw KilnException.notFound('Token not found');
    this.forgetTokens();
  }

  /**
   * Drops every token this replica remembers (on any revocation, here or on another replica:
   * they are rare, and a dropped entry costs one look-up).
   */
  forgetTokens(): void {
    this.generation++;
    this.known.clear();
  }

  /**
   * What a secret lets a request do, or why it does not. Live tokens are remembered for
   * {@link TOKEN_CACHE_MS} (by hash, or by id for {@link accessById}), sparing a query per request; expiry is checked every time.
   */
  async access(secret: string): Promise<TokenAccess | TokenRefusal> {
    const hash = hashSecret(secret);
    return this.lookUp(hash, () => this.tokens.findOneBy({ tokenHash: hash, revokedAt: IsNull() }));
  }

  /**
   * The same as {@link access}, by the token's id: for a dashboard session, which holds the id of
   * the token it was made from (never its secret), so that revoking or expiring that token ends
   * the session at its next request.
   */
  async accessById(tokenId: string): Promise<TokenAccess | TokenRefusal> {
    return this.lookUp(`id:${tokenId}`, () =>
      this.tokens.findOneBy({ id: tokenId, revokedAt: IsNull() }),
    );
  }

  private async lookUp(
    key: string,
    find: () => Promise<Token | null>,
  ): Promise<TokenAccess | TokenRefusal> {
    let access = this.known.get(key);
    if (!access) {
      const generation = this.generation;
      const token = await find();
      if (!token) return 'unknown';
      access = {
        tokenId: token.id,
        projectId: token.projectId,
        role: token.role,
        expiresAt: token.expiresAt,
      };
      if (generation === this.generation) this.known.set(key, access);
    }
    if (access.expiresAt && access.expiresAt.getTime() <= Date.now()) return 'expired';
    this.noteUse(access.tokenId);
    return access;
  }

  /**
   * Records a use, at most once a {@link LAST_USE_WRITE_MS} per token on this replica, and only
   * when the stored value is older than that (other replicas write too), without holding up the
   * request. A lost write only makes `last_used_at` a little older.
   */
  private noteUse(tokenId: string): void {
    const now = Date.now();
    const written = this.lastUseWritten.get(tokenId);
    if (written !== undefined && now - written < LAST_USE_WRITE_MS) return;
    if (this.lastUseWritten.size >= TOKEN_CACHE_MAX) this.lastUseWritten.clear();
    this.lastUseWritten.set(tokenId, now);
    this.tokens
      .createQueryBuilder()
      .update()
      .set({ lastUsedAt: () => 'now()' })
      .where(
        'id = :tokenId AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => :seconds))',
        { tokenId, seconds: LAST_USE_WRITE_MS / 1000 },
      )
      .execute()
      .catch((error: Error) => {
        this.lastUseWritten.delete(tokenId);
        this.logger.warn(`last use of token ${tokenId} not recorded: ${error.message}`);
      });
  }
}
