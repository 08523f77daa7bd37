import { Global, Module } from '@nestjs/common';
import { BullModule } from '@nestjs/bull';
import Redis, { RedisOptions } from 'ioredis';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { TaskQueues } from './task-queues';

/**
 * Bull's shared configuration: one Redis URL and key prefix for every queue, with the `client` and
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
            if (type === 'client') return (client ??= new Redis(config.redisUrl, shared));
            if (type === 'subscriber') return (subscriber ??= new Redis(config.redisUrl, shared));
            return new Redis(config.redisUrl, shared);
          },
        };
      },
    }),
  ],
  providers: [TaskQueues],
  exports: [TaskQueues],
})
export class QueueModule {}
