import { Module } from '@nestjs/common';
import { ConfigModule } from '@kiln/config';
import { DatabaseModule } from '@kiln/database';
import { QueueModule } from '@kiln/queue';
import { RedisModule } from '@kiln/redis';
import { SchedulesModule } from '@kiln/schedules';
import { TasksModule } from '@kiln/tasks';
import { WebhookDispatcher, WebhooksModule } from '@kiln/webhooks';
import { DatabaseContact } from './database-contact';
import { LeaderLease } from './leader-lease';
import { LeaderLoop } from './leader-loop';
import { Reconciler } from './reconciler';
import { RetentionPurger } from './retention-purger';
import { ScheduleFirer } from './schedule-firer';

@Module({
  imports: [
    ConfigModule,
    DatabaseModule.forRoot(),
    QueueModule,
    RedisModule,
    TasksModule,
    SchedulesModule,
    WebhooksModule,
  ],
  // The webhook dispatcher runs in every replica, leader or not: deliveries are leased rows.
  providers: [
    DatabaseContact,
    LeaderLease,
    ScheduleFirer,
    Reconciler,
    LeaderLoop,
    RetentionPurger,
    WebhookDispatcher,
  ],
})
export class SchedulerModule {}
