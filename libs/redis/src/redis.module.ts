import { Global, Module } from '@nestjs/common';
import { RedisEpoch } from './redis-epoch';
import { RedisHealth } from './redis-health';
import { TaskLogFeed } from './task-log-feed';
import { TaskSignals } from './task-signals';
import { TokenSignals } from './token-signals';

/**
 * What Kiln keeps in Redis besides the queue: the live log feed, cancel and token revocation signals (pub/sub on
 * connections of their own), the epoch that tells when Redis lost its data, and Redis's health.
 * The queue itself (Bull's layout and Kiln's Lua on it) is `@kiln/queue`.
 */
@Global()
@Module({
  providers: [RedisHealth, TaskSignals, TokenSignals, RedisEpoch, TaskLogFeed],
  exports: [RedisHealth, TaskSignals, TokenSignals, RedisEpoch, TaskLogFeed],
})
export class RedisModule {}
