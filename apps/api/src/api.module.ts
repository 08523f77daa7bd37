import { TracingShutdown } from '@kiln/common';
import { Module } from '@nestjs/common';
import { APP_FILTER, APP_INTERCEPTOR } from '@nestjs/core';
import { CodesModule } from '@kiln/codes';
import { ConfigModule } from '@kiln/config';
import { DatabaseModule } from '@kiln/database';
import { HealthModule, healthServerProviders } from '@kiln/health';
import { ImageUploadsService, ImagesModule, ZipPackagesService } from '@kiln/images';
import { MulterModule } from '@nestjs/platform-express';
import { KilnMetrics, MetricsModule } from '@kiln/metrics';
import { QueueModule } from '@kiln/queue';
import { RedisModule } from '@kiln/redis';
import { SchedulesModule } from '@kiln/schedules';
import { TasksModule } from '@kiln/tasks';
import { WebhooksModule } from '@kiln/webhooks';
import { AuthModule } from './auth/auth.module';
import { CodesController } from './codes/codes.controller';
import { InvokeController } from './codes/invoke.controller';
import { codeUploadStorage } from './codes/upload-storage';
import { StacksController } from './codes/stacks.controller';
import { CredentialsController } from './credentials/credentials.controller';
import { HealthController } from './health/health.controller';
import { ApiDrain } from './http/api-drain';
import { MetricsController } from './health/metrics.controller';
import { OpenApiController } from './openapi/openapi.controller';
import { BodyInterceptor } from './http/body.interceptor';
import { KilnExceptionFilter } from './http/exception.filter';
import { ProjectLimitsController } from './projects/project-limits.controller';
import { ProjectsController } from './projects/projects.controller';
import { ProjectStatsController } from './projects/project-stats.controller';
import { SchedulesController } from './schedules/schedules.controller';
import { FollowWatch } from './tasks/follow-watch';
import { FollowerSlots, InvokeSlots } from './tasks/held-slots';
import { Invoker } from './tasks/invoker';
import { TaskEnds } from './tasks/task-ends';
import { LogFollower } from './tasks/log-follower';
import { TasksController } from './tasks/tasks.controller';
import { CodeTriggersController, IncomingTriggersController } from './webhooks/triggers.controller';
import { UiSessionController } from './ui/ui-session.controller';
import { WebhooksController } from './webhooks/webhooks.controller';
import { LogDrainsController } from './webhooks/log-drains.controller';

@Module({
  imports: [
    ConfigModule,
    MetricsModule,
    DatabaseModule.forRoot(),
    QueueModule,
    RedisModule,
    AuthModule,
    CodesModule,
    TasksModule,
    SchedulesModule,
    ImagesModule,
    // Multipart `file` parts stream into the image or zip upload check.
    MulterModule.registerAsync({
      imports: [ImagesModule],
      inject: [ImageUploadsService, ZipPackagesService],
      useFactory: (images: ImageUploadsService, zips: ZipPackagesService) => ({
        storage: codeUploadStorage(images, zips),
      }),
    }),
    WebhooksModule,
    HealthModule.register({ withDocker: false }),
  ],
  controllers: [
    HealthController,
    MetricsController,
    OpenApiController,
    ProjectsController,
    ProjectLimitsController,
    ProjectStatsController,
    CodesController,
    InvokeController,
    StacksController,
    TasksController,
    SchedulesController,
    CredentialsController,
    WebhooksController,
    LogDrainsController,
    CodeTriggersController,
    IncomingTriggersController,
    UiSessionController,
  ],
  providers: [
    TracingShutdown,
    { provide: APP_FILTER, useClass: KilnExceptionFilter },
    // Bodies are read after the global guard (ProjectGuard) has authenticated the request.
    { provide: APP_INTERCEPTOR, useClass: BodyInterceptor },
    ApiDrain,
    LogFollower,
    FollowWatch,
    FollowerSlots,
    InvokeSlots,
    TaskEnds,
    Invoker,
    // KILN_METRICS_PORT: /metrics (and /healthz) off the public router, on a listener of its own.
    ...healthServerProviders((config) => ({
      name: 'api',
      host: config.metrics.apiHost,
      port: config.metrics.apiPort,
    })),
  ],
})
export class ApiModule {
  constructor(metrics: KilnMetrics) {
    metrics.register('api');
  }
}
