import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import type Redis from 'ioredis';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { redisConnection } from './redis-connection';

/**
 * A marker key that tells whether Redis still holds what Kiln put in it: if it is gone, Redis
 * lost its data (`FLUSHALL`, a restart without AOF, eviction) and every queued task's job must be
 * assumed lost too.
 */
@Injectable()
export class RedisEpoch implements OnApplicationShutdown {
  private readonly redis: Redis;
  private readonly key: string;

  constructor(@Inject(KILN_CONFIG) config: KilnConfig) {
    this.redis = redisConnection(config, { maxRetriesPerRequest: 1, connectTimeout: 2000 });
    this.redis.on('error', () => undefined);
    this.key = `${config.queuePrefix}:epoch`;
  }

  /** Sets the marker; true when it was missing (Redis is new to Kiln or lost its data). */
  async renewed(): Promise<boolean> {
    const answer = await this.redis.set(this.key, new Date().toISOString(), 'NX');
    return answer === 'OK';
  }

  async onApplicationShutdown(): Promise<void> {
    this.redis.disconnect();
  }
}
