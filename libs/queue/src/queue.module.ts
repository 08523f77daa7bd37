import { Global, Module } from '@nestjs/common';
import { BullModule } from '@nestjs/bull';
import type Redis from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { redisConnection } from '@kiln/redis';
import { TaskQueues } from './task-queues';

/**
 * Bull's shared configuration: one Redis (`redisConnection`: a URL or Sentinel) and key prefix for every queue, with the `client` and
 * `subscriber` connections shared by all queues of a process (Bull's "reusing connections").
 */
@Global()
@Module({
  imports: [
    BullModule.forRootAsync({
      inject: [KILN_CONFIG],
      useFactory: (config: KilnConfig) => {
        const shared: RedisOptions = { maxRetriesPerRequest: null, enableReadyCheck: false };
        let client: Redis | undefined;
        let subscriber: Redis | undefined;
        return {
          prefix: config.queuePrefix,
          createClient: (type: 'client' | 'subscriber' | 'bclient') => {
            if (type === 'client') return (client ??= redisConnection(config, shared));
            if (type === 'subscriber') return (subscriber ??= redisConnection(config, shared));
            return redisConnection(config, shared);
          },
        };
      },
    }),
  ],
  providers: [TaskQueues],
  exports: [TaskQueues],
})
export class QueueModule {}
