import type Redis from 'ioredis';
import { RedisTarget, redisConnection } from './redis-connection';

/**
 * A Redis connection of its own (pub/sub needs one), outside Bull's: fails fast rather than
 * queueing commands while Redis is away, and never throws from its `error` events.
 */
export function sideConnection(target: RedisTarget): Redis {
  const redis = redisConnection(target, { maxRetriesPerRequest: 1, connectTimeout: 2000 });
  redis.on('error', () => undefined);
  return redis;
}
