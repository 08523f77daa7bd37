import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';
import { kilnLogger, runProcess } from '@kiln/common';
import { loadConfig } from '@kiln/config';
import { ApiModule } from './api.module';
import { answerFor } from './http/exception.filter';
import { decodeJson, readBody } from './http/body';

runProcess('api', async () => {
  const config = loadConfig();
  const app = await NestFactory.create<NestExpressApplication>(ApiModule, {
    bodyParser: false,
    logger: kilnLogger(config.logLevel),
  });
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(readBody(config.api.maxBodyBytes), decodeJson());
  // Errors raised by the body middleware never reach Nest's filters: answer them the same way.
  const logger = new Logger('HTTP');
  app.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error);
    const { status, msg } = answerFor(error, logger);
    res.status(status).type('application/json').json({ msg });
  });
  app.enableShutdownHooks();
  // An image upload of gigabytes may take longer than Node's default 5 minutes per request; the
  // headers must still come within headersTimeout (60 s).
  (app.getHttpServer() as { requestTimeout: number }).requestTimeout = 3600_000;
  await app.listen(config.api.port, config.api.host);
  logger.log(`Kiln API on http://${config.api.host}:${config.api.port}`);
  return app;
});
