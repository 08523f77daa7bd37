import { Module } from '@nestjs/common';
import { CodesModule } from '@kiln/codes';
import { ConfigModule } from '@kiln/config';
import { DatabaseModule } from '@kiln/database';
import { DockerModule } from '@kiln/docker';
import { HealthModule } from '@kiln/health';
import { ImagesModule } from '@kiln/images';
import { QueueModule } from '@kiln/queue';
import { RedisModule } from '@kiln/redis';
import { TasksModule } from '@kiln/tasks';
import { ContainerLimits } from './container-limits';
import { HealthServer } from './health-server';
import { ImagePuller } from './image-puller';
import { OutcomeRecorder } from './outcome-recorder';
import { TaskDispatcher } from './task-dispatcher';
import { TaskFiles } from './task-files';
import { TaskRunner } from './task-runner';

@Module({
  imports: [
    ConfigModule,
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
    ContainerLimits,
    ImagePuller,
    TaskFiles,
    OutcomeRecorder,
    TaskRunner,
    TaskDispatcher,
    HealthServer,
  ],
})
export class WorkerModule {}
