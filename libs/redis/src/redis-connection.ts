import Redis, { RedisOptions } from 'ioredis';
import type { KilnConfig } from '@kiln/config';

/** What `redisConnection` reads of the configuration. */
export type RedisTarget = Pick<
  KilnConfig,
  'redisUrl' | 'redisSentinels' | 'redisSentinelName' | 'redisSentinelPassword'
>;

/**
 * Every Redis connection Kiln makes (Bull's, the side connections, health, epoch, rate limits)
 * comes from here, so that all of them follow the primary the same way: `REDIS_URL` alone, or
 * with `REDIS_SENTINELS` the primary the sentinels name (its user, password, database and TLS
 * still from `REDIS_URL`). Under Sentinel, ioredis asks the sentinels again on every reconnect:
 * a primary that dies drops its connections, and one demoted by a failover has them dropped by
 * Sentinel (`CLIENT KILL`), so each connection moves to the new primary on its own; a `READONLY`
 * answer (a demoted primary still reached) reconnects too. Not ioredis's `failoverDetector`: a
 * `+switch-master` heard while a connection is already reconnecting (its primary was killed)
 * ends that connection for good ("Connection is closed.", ioredis 5.11).
 */
export function redisConnection(target: RedisTarget, options: RedisOptions = {}): Redis {
  if (target.redisSentinels.length === 0) return new Redis(target.redisUrl, options);
  const url = new URL(target.redisUrl);
  const db = Number(url.pathname.slice(1) || '0');
  return new Redis({
    sentinels: target.redisSentinels,
    name: target.redisSentinelName,
    sentinelPassword: target.redisSentinelPassword,
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db: Number.isInteger(db) ? db : 0,
    ...(url.protocol === 'rediss:' ? { tls: {}, enableTLSForSentinelMode: true } : {}),
    reconnectOnError: (error) => error.message.startsWith('READONLY'),
    ...options,
  });
}
