import { Controller, Get, Inject, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { sameSecret } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { HealthService } from '@kiln/health';
import { RateLimits } from '@kiln/redis';
import { clientAddress } from '../auth/client-address';
import { ApiDrain } from '../http/api-drain';
import { Public, tooManyFailures } from '../auth/guards';
import { tokenOutsideBody } from '../auth/token.strategy';

@Controller()
export class HealthController {
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly health: HealthService,
    private readonly limits: RateLimits,
    private readonly drain: ApiDrain,
  ) {}

  /**
   * 200 `{"status":"ok"}` when Postgres and Redis answer, 503 `{"status":"unavailable"}`
   * otherwise, to anyone. What failed and how (`checks`: its errors name hosts and addresses)
   * only with the admin token; any other token counts as a failed authentication, so that the
   * answer cannot serve to guess the admin token. 503 `{"status":"draining"}` once the process
   * is stopping (`ApiDrain`), whatever the checks say: a load balancer takes it out.
   */
  @Get('healthz')
  @Public()
  async healthz(@Req() req: Request, @Res({ passthrough: true }) res: Response) {
    const token = tokenOutsideBody(req);
    const admin = this.config.adminToken;
    const isAdmin = token !== undefined && admin !== undefined && sameSecret(token, admin);
    if (token !== undefined) {
      const address = clientAddress(req);
      let blocked = this.limits.blockedFor(address);
      if (blocked === 0 && !isAdmin) blocked = await this.limits.failed(address);
      if (blocked > 0) throw tooManyFailures(blocked);
    }
    if (this.drain.draining) {
      res.status(503);
      return { status: 'draining' };
    }
    const report = await this.health.report();
    res.status(report.status === 'ok' ? 200 : 503);
    return isAdmin ? report : { status: report.status };
  }
}
