import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { SignalChannel } from './signal-channel';

/**
 * Tells every API replica at once that a token was revoked, over Redis pub/sub, so that each
 * drops what it remembers of tokens. A lost message costs at most the token cache's second
 * (`TOKEN_CACHE_MS` in `@kiln/projects`).
 */
@Injectable()
export class TokenSignals implements OnApplicationShutdown {
  private readonly channel: SignalChannel;

  constructor(@Inject(KILN_CONFIG) config: KilnConfig) {
    this.channel = new SignalChannel(
      config,
      'token-revoked',
      TokenSignals.name,
      'token revocation signal',
    );
  }

  async revoked(tokenId: string): Promise<void> {
    await this.channel.publish([tokenId]);
  }

  async onRevoke(handler: (tokenId: string) => void): Promise<void> {
    await this.channel.subscribe(handler);
  }

  onApplicationShutdown(): void {
    this.channel.close();
  }
}
