import { Module } from '@nestjs/common';
import { ConfigModule } from '@kiln/config';
import { DatabaseModule } from '@kiln/database';
import { QueueModule } from '@kiln/queue';
import { TasksModule } from '@kiln/tasks';
import { Reconciler } from './reconciler';

@Module({
  imports: [ConfigModule, DatabaseModule.forRoot(), QueueModule, TasksModule],
  providers: [Reconciler],
})
export class SchedulerModule {}
