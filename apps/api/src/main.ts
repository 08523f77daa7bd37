import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';
import type { Server } from 'node:http';
import { kilnLogger, runProcess, startTracing } from '@kiln/common';
import { earlyLogFormat, loadConfig } from '@kiln/config';
import { HealthServer } from '@kiln/health';
import { KilnMetrics } from '@kiln/metrics';
import { ApiModule } from './api.module';
import { accessLog } from './http/access-log';
import { ApiDrain } from './http/api-drain';
import { answerFor, sendError } from './http/exception.filter';
import { httpMetrics } from './http/http-metrics';
import { traceRequests } from './http/http-tracing';
import { serveDashboard } from './ui/ui-static';

/** How often Node looks for requests past their headers or request time-out. */
const TIMEOUT_CHECK_MS = 1000;

runProcess('api', earlyLogFormat(), async () => {
  const config = loadConfig();
  startTracing('api', config.tracing.endpoint);
  // Bodies are read by BodyInterceptor, after the token was checked: no body parser here.
  const app = await NestFactory.create<NestExpressApplication>(ApiModule, {
    bodyParser: false,
    logger: kilnLogger('api', config.logLevel, config.logFormat),
  });
  const metrics = app.get(KilnMetrics);
  app.use(accessLog());
  app.use(app.get(ApiDrain).middleware());
  if (metrics.enabled) app.use(httpMetrics(metrics));
  if (config.tracing.endpoint) app.use(traceRequests());
  // The dashboard (`/ui`, and `/` redirected there): static files, ahead of the API's routes.
  app.use(serveDashboard());
  app.disable('x-powered-by');
  app.set('etag', false);
  // `req.ip` is the peer's address unless the peer is a proxy the operator named.
  app.set('trust proxy', config.api.trustedProxies.length > 0 ? config.api.trustedProxies : false);
  // Errors raised outside Nest's handlers never reach its filters: answer them the same way.
  const logger = new Logger('HTTP');
  app.use((error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error);
    sendError(req, res, answerFor(error, logger));
  });
  app.enableShutdownHooks();
  // Slow clients are cut off: the headers must come within KILN_HTTP_HEADERS_TIMEOUT_SECONDS
  // (Node answers 408 and closes), bodies within the body time-outs (BodyReader), uploads within
  // their idle time-out; every request must be whole within KILN_UPLOAD_TIMEOUT_SECONDS, the
  // longest an upload may take. A live-log follower sends no body: its request is whole at once
  // and no time-out applies to the stream it reads.
  const server = app.getHttpServer() as Server & { connectionsCheckingInterval: number };
  server.headersTimeout = config.api.headersTimeoutSeconds * 1000;
  server.requestTimeout = config.api.uploadTimeoutSeconds * 1000;
  // Read when the server starts listening (Node's default checks every 30 s).
  server.connectionsCheckingInterval = TIMEOUT_CHECK_MS;
  await app.listen(config.api.port, config.api.host);
  logger.log(`Kiln API on http://${config.api.host}:${config.api.port}`);
  if (metrics.enabled) {
    const url =
      app.get(HealthServer).metricsUrl ?? `http://${config.api.host}:${config.api.port}/metrics`;
    logger.log(`metrics on ${url} (admin token or KILN_METRICS_TOKEN)`);
  }
  return app;
});
