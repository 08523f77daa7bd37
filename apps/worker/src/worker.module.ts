import { TracingShutdown } from '@kiln/common';
import { Module } from '@nestjs/common';
import { CodesModule } from '@kiln/codes';
import { ConfigModule } from '@kiln/config';
import { DatabaseModule } from '@kiln/database';
import { DockerModule } from '@kiln/docker';
import { HealthModule, healthServerProviders } from '@kiln/health';
import { ImagesModule } from '@kiln/images';
import { KilnMetrics, MetricsModule } from '@kiln/metrics';
import { QueueModule } from '@kiln/queue';
import { RedisModule } from '@kiln/redis';
import { TasksModule } from '@kiln/tasks';
import { ContainerLimits } from './container-limits';
import { ImagePuller } from './image-puller';
import { OutcomeRecorder } from './outcome-recorder';
import { TaskDispatcher } from './task-dispatcher';
import { TaskFiles } from './task-files';
import { ZipPackages } from './zip-packages';
import { HotPool } from './hot/hot-pool';
import { TaskRunner } from './task-runner';

@Module({
  imports: [
    ConfigModule,
    MetricsModule,
    DatabaseModule.forRoot({ waitForever: true }),
    QueueModule,
    RedisModule,
    DockerModule,
    CodesModule,
    TasksModule,
    ImagesModule,
    HealthModule.register({ withDocker: true }),
  ],
  providers: [
    TracingShutdown,
    ContainerLimits,
    ImagePuller,
    TaskFiles,
    ZipPackages,
    OutcomeRecorder,
    TaskRunner,
    HotPool,
    TaskDispatcher,
    ...healthServerProviders((config) => ({
      name: 'worker',
      host: config.api.host,
      port: config.worker.healthPort,
      details: { worker: config.worker.id },
    })),
  ],
})
export class WorkerModule {
  constructor(metrics: KilnMetrics) {
    metrics.register('worker');
  }
}
