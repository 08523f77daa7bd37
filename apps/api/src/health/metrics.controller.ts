import { Controller, Get, Inject, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { KilnException } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { KilnMetrics, scrapeAccess } from '@kiln/metrics';
import { RateLimits } from '@kiln/redis';
import { clientAddress } from '../auth/client-address';
import { Public, tooManyFailures } from '../auth/guards';
import { tokenOutsideBody } from '../auth/token.strategy';

@Controller()
export class MetricsController {
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly metrics: KilnMetrics,
    private readonly limits: RateLimits,
  ) {}

  /**
   * Prometheus's text format, with the admin token or KILN_METRICS_TOKEN only: the figures span
   * every project. No token, or any other (a project's too), is a failed authentication (401,
   * counted by the failed-auth block). 404 when metrics are off or served on KILN_METRICS_PORT.
   */
  @Get('metrics')
  @Public()
  async scrape(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (!this.metrics.enabled || this.config.metrics.apiPort !== 0) {
      throw KilnException.notFound('Not found');
    }
    const address = clientAddress(req);
    const blockedMs = this.limits.blockedFor(address);
    if (blockedMs > 0) throw tooManyFailures(blockedMs);
    const access = scrapeAccess(tokenOutsideBody(req), this.config);
    if (access !== 'granted') {
      const blocked = await this.limits.failed(address);
      if (blocked > 0) throw tooManyFailures(blocked);
      throw KilnException.unauthorized(
        access === 'missing'
          ? 'Metrics need the admin token or KILN_METRICS_TOKEN'
          : 'This token may not read metrics',
      );
    }
    const { contentType, body } = await this.metrics.exposition();
    // As prom-client names it (Express's `type()` would reorder its parameters).
    res.status(200).setHeader('content-type', contentType);
    res.send(body);
  }
}
