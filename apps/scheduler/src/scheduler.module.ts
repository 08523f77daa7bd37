import { Module } from '@nestjs/common';
import { ConfigModule } from '@kiln/config';
import { DatabaseModule } from '@kiln/database';
import { QueueModule } from '@kiln/queue';
import { SchedulesModule } from '@kiln/schedules';
import { TasksModule } from '@kiln/tasks';
import { LeaderLease } from './leader-lease';
import { LeaderLoop } from './leader-loop';
import { Reconciler } from './reconciler';
import { ScheduleFirer } from './schedule-firer';

@Module({
  imports: [ConfigModule, DatabaseModule.forRoot(), QueueModule, TasksModule, SchedulesModule],
  providers: [LeaderLease, ScheduleFirer, Reconciler, LeaderLoop],
})
export class SchedulerModule {}
