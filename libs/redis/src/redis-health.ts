import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import type Redis from 'ioredis';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { redisConnection } from './redis-connection';

/** A dedicated connection that only answers "is Redis there?", failing fast instead of queueing. */
@Injectable()
export class RedisHealth implements OnApplicationShutdown {
  private readonly redis: Redis;

  constructor(@Inject(KILN_CONFIG) config: KilnConfig) {
    this.redis = redisConnection(config, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2000,
      retryStrategy: () => 1000,
    });
    this.redis.on('error', () => undefined);
    this.redis.connect().catch(() => undefined);
  }

  async check(): Promise<void> {
    const pong = await this.redis.ping();
    if (pong !== 'PONG') throw new Error(`unexpected PING answer ${String(pong)}`);
  }

  async onApplicationShutdown(): Promise<void> {
    this.redis.disconnect();
  }
}
