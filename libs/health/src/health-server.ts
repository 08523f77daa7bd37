import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
  Provider,
} from '@nestjs/common';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { sameSecret } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { headerToken, KilnMetrics, scrapeAccess } from '@kiln/metrics';
import { HealthService } from './health.service';

/** Where a process's own small HTTP server listens (port 0: none), and what its admin report adds. */
export interface HealthServerOptions {
  /** The process's name in the log line: "worker", "scheduler", "api metrics". */
  name: string;
  host: string;
  port: number;
  /** Added to the health report shown with the admin token (e.g. the worker's id). */
  details?: Record<string, string>;
}

export const HEALTH_SERVER_OPTIONS = Symbol('HEALTH_SERVER_OPTIONS');

/** The providers of a process's {@link HealthServer}, its options read from the config. */
export function healthServerProviders(
  options: (config: KilnConfig) => HealthServerOptions,
): Provider[] {
  return [
    { provide: HEALTH_SERVER_OPTIONS, inject: [KILN_CONFIG], useFactory: options },
    HealthServer,
  ];
}

/**
 * A process's own HTTP server, when a port is configured: `GET /healthz` (ok or not to anyone,
 * the checks' details with the admin token) and `GET /metrics` (Prometheus, with the admin token
 * or KILN_METRICS_TOKEN: 401 without it). The worker and the scheduler
 * have no other HTTP; the API uses it for KILN_METRICS_PORT.
 */
@Injectable()
export class HealthServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(HealthServer.name);
  private server: Server | undefined;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    @Inject(HEALTH_SERVER_OPTIONS) private readonly options: HealthServerOptions,
    private readonly health: HealthService,
    private readonly metrics: KilnMetrics,
  ) {}

  /** The URL of this server's `/metrics`, or undefined when it serves none. */
  get metricsUrl(): string | undefined {
    if (this.options.port === 0 || !this.metrics.enabled) return undefined;
    return `http://${this.options.host}:${this.options.port}/metrics`;
  }

  async onApplicationBootstrap(): Promise<void> {
    const { port, host, name } = this.options;
    if (port === 0) return;
    this.server = createServer((req, res) => {
      const path = req.url?.split('?')[0];
      const answer =
        req.method === 'GET' && path === '/healthz'
          ? this.healthz(req, res)
          : req.method === 'GET' && path === '/metrics' && this.metrics.enabled
            ? this.scrape(req, res)
            : Promise.resolve(json(res, 404, { msg: 'Not found' }));
      answer.catch(() => {
        if (!res.headersSent) res.writeHead(503);
        res.end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(port, host, resolve));
    this.logger.log(
      `${name}: health on http://${host}:${port}/healthz${this.metricsUrl ? `, metrics on ${this.metricsUrl}` : ''}`,
    );
  }

  async onApplicationShutdown(): Promise<void> {
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }

  private async healthz(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Anyone who reaches the port learns ok or not; what failed (errors name hosts and
    // addresses) only with the admin token.
    const admin = this.config.adminToken;
    const token = headerToken(req.headers.authorization);
    const details = admin !== undefined && token !== undefined && sameSecret(token, admin);
    const report = await this.health.report();
    json(
      res,
      report.status === 'ok' ? 200 : 503,
      details ? { ...report, ...this.options.details } : { status: report.status },
    );
  }

  private async scrape(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const access = scrapeAccess(headerToken(req.headers.authorization), this.config);
    if (access !== 'granted') {
      const msg =
        access === 'missing'
          ? 'Metrics need the admin token or KILN_METRICS_TOKEN'
          : 'This token may not read metrics';
      json(res, 401, { msg });
      return;
    }
    const { contentType, body } = await this.metrics.exposition();
    res.writeHead(200, { 'content-type': contentType }).end(body);
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
