import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { loadConfig } from '@kiln/config';
import { kilnLogger, runProcess } from '@kiln/common';
import { WorkerModule } from './worker.module';

runProcess('worker', async () => {
  const config = loadConfig();
  const app = await NestFactory.createApplicationContext(WorkerModule, {
    logger: kilnLogger(config.logLevel),
  });
  app.enableShutdownHooks();
  return app;
});
