import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { TokensService } from '@kiln/projects';
import { TokenSignals } from '@kiln/redis';

/**
 * Revocation across API replicas: the replica that revokes a token tells the others over Redis,
 * and each forgets the tokens it remembers at once. Without Redis they still stop trusting what
 * they remember within `TOKEN_CACHE_MS`.
 */
@Injectable()
export class TokenRevocations implements OnModuleInit {
  private readonly logger = new Logger(TokenRevocations.name);

  constructor(
    private readonly tokens: TokensService,
    private readonly signals: TokenSignals,
  ) {}

  async onModuleInit(): Promise<void> {
    try {
      await this.signals.onRevoke(() => this.tokens.forgetTokens());
    } catch (error) {
      this.logger.warn(
        `not subscribed to token revocations (Redis): ${(error as Error).message}; revoked tokens stop working within a second all the same`,
      );
    }
  }

  async revoke(projectId: string, tokenId: string): Promise<void> {
    await this.tokens.revoke(projectId, tokenId);
    await this.signals.revoked(tokenId);
  }
}
