import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { loadConfig } from '@kiln/config';
import { logLevels, runProcess } from '@kiln/common';
import { WorkerModule } from './worker.module';

runProcess('worker', async () => {
  const config = loadConfig();
  const app = await NestFactory.createApplicationContext(WorkerModule, {
    logger: logLevels(config.logLevel),
  });
  app.enableShutdownHooks();
  return app;
});
