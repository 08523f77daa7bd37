import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import type Redis from 'ioredis';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { sideConnection } from './side-connection';

/**
 * Tells workers at once that tasks were cancelled, over Redis pub/sub. A lost message costs only
 * time: workers also learn it from their next heartbeat (`TaskLifecycle.heartbeat`).
 */
@Injectable()
export class TaskSignals implements OnApplicationShutdown {
  private readonly logger = new Logger(TaskSignals.name);
  private readonly channel: string;
  private publisher: Redis | undefined;
  private subscriber: Redis | undefined;

  constructor(@Inject(KILN_CONFIG) private readonly config: KilnConfig) {
    this.channel = `${config.queuePrefix}:signals:cancel`;
  }

  async cancelled(taskIds: string[]): Promise<void> {
    if (taskIds.length === 0) return;
    this.publisher ??= this.connect();
    try {
      await this.publisher.publish(this.channel, JSON.stringify(taskIds));
    } catch (error) {
      this.logger.warn(
        `cancel signal not sent (heartbeats will carry it): ${(error as Error).message}`,
      );
    }
  }

  async onCancel(handler: (taskId: string) => void): Promise<void> {
    this.subscriber ??= this.connect();
    this.subscriber.on('message', (_channel: string, message: string) => {
      try {
        const ids: unknown = JSON.parse(message);
        if (Array.isArray(ids)) for (const id of ids) if (typeof id === 'string') handler(id);
      } catch {
        this.logger.warn('ignored a malformed cancel signal');
      }
    });
    await this.subscriber.subscribe(this.channel);
  }

  async onApplicationShutdown(): Promise<void> {
    this.publisher?.disconnect();
    this.subscriber?.disconnect();
  }

  private connect(): Redis {
    return sideConnection(this.config.redisUrl);
  }
}
