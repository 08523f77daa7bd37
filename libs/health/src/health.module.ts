import { DynamicModule, Module } from '@nestjs/common';
import { DatabaseHealth } from '@kiln/database';
import { DockerModule } from '@kiln/docker';
import { MetricsModule } from '@kiln/metrics';
import { HealthService } from './health.service';

@Module({})
export class HealthModule {
  /** `withDocker` adds the Docker engine to the checks (workers). */
  static register(options: { withDocker: boolean }): DynamicModule {
    return {
      module: HealthModule,
      imports: options.withDocker ? [DockerModule, MetricsModule] : [MetricsModule],
      providers: [DatabaseHealth, HealthService],
      exports: [HealthService],
    };
  }
}
