import { Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { CodesModule } from '@kiln/codes';
import { ConfigModule } from '@kiln/config';
import { DatabaseModule } from '@kiln/database';
import { HealthModule } from '@kiln/health';
import { QueueModule } from '@kiln/queue';
import { SchedulesModule } from '@kiln/schedules';
import { TasksModule } from '@kiln/tasks';
import { WebhooksModule } from '@kiln/webhooks';
import { AuthModule } from './auth/auth.module';
import { CodesController } from './codes/codes.controller';
import { HealthController } from './health/health.controller';
import { KilnExceptionFilter } from './http/exception.filter';
import { ProjectsController } from './projects/projects.controller';
import { SchedulesController } from './schedules/schedules.controller';
import { TasksController } from './tasks/tasks.controller';
import { CodeTriggersController, IncomingTriggersController } from './webhooks/triggers.controller';
import { WebhooksController } from './webhooks/webhooks.controller';

@Module({
  imports: [
    ConfigModule,
    DatabaseModule.forRoot(),
    QueueModule,
    AuthModule,
    CodesModule,
    TasksModule,
    SchedulesModule,
    WebhooksModule,
    HealthModule.register({ withDocker: false }),
  ],
  controllers: [
    HealthController,
    ProjectsController,
    CodesController,
    TasksController,
    SchedulesController,
    WebhooksController,
    CodeTriggersController,
    IncomingTriggersController,
  ],
  providers: [{ provide: APP_FILTER, useClass: KilnExceptionFilter }],
})
export class ApiModule {}
