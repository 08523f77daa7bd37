import { DynamicModule, Module } from '@nestjs/common';
import { DatabaseHealth } from '@kiln/database';
import { DockerModule } from '@kiln/docker';
import { HealthService } from './health.service';

@Module({})
export class HealthModule {
  /** `withDocker` adds the Docker engine to the checks (workers). */
  static register(options: { withDocker: boolean }): DynamicModule {
    return {
      module: HealthModule,
      imports: options.withDocker ? [DockerModule] : [],
      providers: [DatabaseHealth, HealthService],
      exports: [HealthService],
    };
  }
}
