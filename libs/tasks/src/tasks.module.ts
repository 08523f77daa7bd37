import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CodesModule } from '@kiln/codes';
import { MetricsModule } from '@kiln/metrics';
import { ProjectsModule } from '@kiln/projects';
import { Task } from './task.entity';
import { TaskLogChunk } from './task-log-chunk.entity';
import { TasksService } from './tasks.service';
import { TaskDelivery } from './task-delivery';
import { TaskStamps } from './store/task-stamps';
import { TaskLifecycle } from './store/task-lifecycle';
import { TaskStore } from './store/task-store';
import { TaskRetentionStore } from './store/task-retention';
import { TaskLogStore } from './task-log-store';
import { QueuedTasksQuota } from './queued-tasks-quota';
import { QueueFigures } from './queue-figures';
import { ProjectStatsService } from './project-stats';
import { ProjectStatsStore } from './store/project-stats-store';

@Module({
  imports: [
    TypeOrmModule.forFeature([Task, TaskLogChunk]),
    CodesModule,
    ProjectsModule,
    MetricsModule,
  ],
  providers: [
    TasksService,
    QueuedTasksQuota,
    TaskStore,
    TaskStamps,
    TaskDelivery,
    TaskLifecycle,
    TaskLogStore,
    TaskRetentionStore,
    QueueFigures,
    ProjectStatsStore,
    ProjectStatsService,
  ],
  exports: [
    QueueFigures,
    ProjectStatsService,
    TasksService,
    TaskDelivery,
    TaskLifecycle,
    TaskLogStore,
    TaskRetentionStore,
  ],
})
export class TasksModule {}
