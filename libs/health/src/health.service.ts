import { Injectable, Optional } from '@nestjs/common';
import { withTimeout } from '@kiln/common';
import { DatabaseHealth } from '@kiln/database';
import { DockerEngine } from '@kiln/docker';
import { KilnMetrics } from '@kiln/metrics';
import { RedisHealth } from '@kiln/redis';

export interface HealthReport {
  status: 'ok' | 'unavailable';
  checks: Record<string, string>;
}

const CHECK_TIMEOUT_MS = 2000;

/** Readiness of what this process depends on: Postgres and Redis, and Docker on workers. */
@Injectable()
export class HealthService {
  constructor(
    private readonly database: DatabaseHealth,
    private readonly redis: RedisHealth,
    metrics: KilnMetrics,
    @Optional() private readonly docker?: DockerEngine,
  ) {
    // kiln_dependency_up{dependency}: the same checks as /healthz, at each scrape.
    metrics.beforeScrape(async () => {
      const { checks } = await this.report();
      for (const [dependency, result] of Object.entries(checks)) {
        metrics.dependencyUp.set({ dependency }, result === 'ok' ? 1 : 0);
      }
    });
  }

  async report(): Promise<HealthReport> {
    const checks: Record<string, () => Promise<unknown>> = {
      postgres: () => this.database.check(),
      redis: () => this.redis.check(),
    };
    const docker = this.docker;
    if (docker) checks.docker = () => docker.ping();
    const results = await Promise.all(
      Object.entries(checks).map(async ([name, check]) => [name, await probe(check)] as const),
    );
    return {
      status: results.every(([, result]) => result === 'ok') ? 'ok' : 'unavailable',
      checks: Object.fromEntries(results),
    };
  }
}

async function probe(check: () => Promise<unknown>): Promise<string> {
  try {
    await withTimeout(check(), CHECK_TIMEOUT_MS, 'no answer within 2 s');
    return 'ok';
  } catch (error) {
    return `error: ${(error as Error).message}`;
  }
}
