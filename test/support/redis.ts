import type { QueueOptions } from 'bull';
import Redis, { RedisOptions } from 'ioredis';

// Jest-free: the benchmarks (bench/, plain node) import this file too.

/**
 * The suite's Redis: database KILN_TEST_REDIS_DB (default 0) of REDIS_URL, so that a second run
 * on the machine (which sets another number) survives this run's FLUSHDB test.
 */
export function testRedisUrl(): string {
  const url = new URL(process.env.REDIS_URL!);
  url.pathname = `/${Number(process.env.KILN_TEST_REDIS_DB ?? 0)}`;
  return url.toString();
}

/**
 * Bull queue options as Kiln's QueueModule gives them (libs/queue/src/queue.module.ts): one
 * shared client and one subscriber, a connection of its own for anything else. Bull leaves the
 * connections it got from createClient open: each one is added to `connections`, for the caller
 * to close.
 */
export function kilnQueueOptions(
  redisUrl: string,
  prefix: string,
  connections: Redis[] = [],
): QueueOptions {
  const shared: RedisOptions = { maxRetriesPerRequest: null, enableReadyCheck: false };
  const connect = (): Redis => {
    const connection = new Redis(redisUrl, shared);
    connections.push(connection);
    return connection;
  };
  let client: Redis | undefined;
  let subscriber: Redis | undefined;
  return {
    prefix,
    createClient: (type) => {
      if (type === 'client') return (client ??= connect());
      if (type === 'subscriber') return (subscriber ??= connect());
      return connect();
    },
  };
}
