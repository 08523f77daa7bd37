import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { createServer, Server } from 'node:http';
import { sameSecret } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { HealthService } from '@kiln/health';

/**
 * The worker has no HTTP API; this serves only `GET /healthz`, when a port is configured: ok or
 * not to anyone, the checks' details with the admin token (`Authorization: OAuth <token>`).
 */
@Injectable()
export class HealthServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(HealthServer.name);
  private server: Server | undefined;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly health: HealthService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const port = this.config.worker.healthPort;
    if (port === 0) return;
    this.server = createServer((req, res) => {
      if (req.method !== 'GET' || req.url?.split('?')[0] !== '/healthz') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"msg":"Not found"}');
        return;
      }
      // Anyone who reaches the port learns ok or not; what failed (errors name hosts and
      // addresses) and the worker's id only with the admin token.
      const admin = this.config.adminToken;
      const token = /^(?:OAuth|Bearer)\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
      const details = admin !== undefined && token !== undefined && sameSecret(token, admin);
      this.health
        .report()
        .then((report) => {
          res.writeHead(report.status === 'ok' ? 200 : 503, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify(
              details ? { ...report, worker: this.config.worker.id } : { status: report.status },
            ),
          );
        })
        .catch(() => res.writeHead(503).end());
    });
    await new Promise<void>((resolve) => this.server!.listen(port, this.config.api.host, resolve));
    this.logger.log(`health on http://${this.config.api.host}:${port}/healthz`);
  }

  async onApplicationShutdown(): Promise<void> {
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }
}
