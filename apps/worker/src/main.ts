import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { earlyLogFormat, loadConfig } from '@kiln/config';
import { kilnLogger, runProcess, startTracing } from '@kiln/common';
import { WorkerModule } from './worker.module';

runProcess('worker', earlyLogFormat(), async () => {
  const config = loadConfig();
  startTracing('worker', config.tracing.endpoint);
  const app = await NestFactory.createApplicationContext(WorkerModule, {
    logger: kilnLogger('worker', config.logLevel, config.logFormat),
  });
  app.enableShutdownHooks();
  return app;
});
