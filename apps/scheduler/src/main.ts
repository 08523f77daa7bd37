import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { kilnLogger, runProcess, startTracing } from '@kiln/common';
import { earlyLogFormat, loadConfig } from '@kiln/config';
import { SchedulerModule } from './scheduler.module';

runProcess('scheduler', earlyLogFormat(), async () => {
  const config = loadConfig();
  startTracing('scheduler', config.tracing.endpoint);
  const app = await NestFactory.createApplicationContext(SchedulerModule, {
    logger: kilnLogger('scheduler', config.logLevel, config.logFormat),
  });
  app.enableShutdownHooks();
  return app;
});
