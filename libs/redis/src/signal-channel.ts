import { Logger } from '@nestjs/common';
import type Redis from 'ioredis';
import type { KilnConfig } from '@kiln/config';
import type { RedisTarget } from './redis-connection';
import { sideConnection } from './side-connection';

/**
 * One Redis pub/sub channel carrying lists of ids (cancelled tasks, revoked tokens), on
 * connections of its own opened on first use. Messages are hints that save time, never the only
 * way a process learns something: a lost one costs only a delay, so failures are logged, not
 * thrown.
 */
export class SignalChannel {
  private readonly target: RedisTarget;
  private readonly channel: string;
  private readonly logger: Logger;
  private publisher: Redis | undefined;
  private subscriber: Redis | undefined;

  /**
   * `<queue prefix>:signals:<name>`; `owner` names the logger, `what` a signal in log lines
   * ("cancel signal").
   */
  constructor(
    config: KilnConfig,
    name: string,
    owner: string,
    private readonly what: string,
  ) {
    this.target = config;
    this.channel = `${config.queuePrefix}:signals:${name}`;
    this.logger = new Logger(owner);
  }

  /** Publishes `ids`; true when Redis took the message. */
  async publish(ids: string[]): Promise<boolean> {
    if (ids.length === 0) return true;
    this.publisher ??= sideConnection(this.target);
    try {
      await this.publisher.publish(this.channel, JSON.stringify(ids));
      return true;
    } catch (error) {
      this.logger.warn(`${this.what} not sent: ${(error as Error).message}`);
      return false;
    }
  }

  /** Calls `handler` with each id published from now on; rejects if Redis refuses the subscription. */
  async subscribe(handler: (id: string) => void): Promise<void> {
    this.subscriber ??= sideConnection(this.target);
    this.subscriber.on('message', (_channel: string, message: string) => {
      try {
        const ids: unknown = JSON.parse(message);
        if (Array.isArray(ids)) for (const id of ids) if (typeof id === 'string') handler(id);
      } catch {
        this.logger.warn(`ignored a malformed ${this.what}`);
      }
    });
    await this.subscriber.subscribe(this.channel);
  }

  close(): void {
    this.publisher?.disconnect();
    this.subscriber?.disconnect();
  }
}
