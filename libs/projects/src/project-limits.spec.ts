import type { DataSource } from 'typeorm';
import { KilnException } from '@kiln/common';
import { KilnConfig, loadConfig } from '@kiln/config';
import { ProjectLimits, checkQuota, parseQuotaOverrides } from './project-limits';

const config: KilnConfig = loadConfig({
  DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db',
  REDIS_URL: 'redis://127.0.0.1:6379',
});

/** ProjectLimits with Postgres faked: `clusters` granted, `quotas` overridden; counts the reads. */
function setup(clusters: string[], quotas: Record<string, number> = {}) {
  const reads = { n: 0 };
  const db = {
    query: async (sql: string) => {
      if (sql.includes('array_agg')) {
        reads.n++;
        return [{ quotas, clusters }];
      }
      return [[], 1];
    },
  };
  return { limits: new ProjectLimits(config, db as unknown as DataSource), reads };
}

async function statusOf(work: Promise<unknown>): Promise<string> {
  return work.then(
    () => 'ok',
    (error: unknown) => (error instanceof KilnException ? error.code : String(error)),
  );
}

describe('ProjectLimits', () => {
  it('lets `default` through without a read, and refuses an ungranted cluster with a 403', async () => {
    const { limits, reads } = setup(['trusted']);
    await limits.checkClusters('p', ['default', 'default']);
    expect(reads.n).toBe(0);
    await limits.checkClusters('p', ['default', 'trusted']);
    await expect(limits.checkClusters('p', ['trusted', 'other'])).rejects.toThrow(
      'cluster "other" is not granted to this project',
    );
    expect(await statusOf(limits.checkClusters('p', ['other']))).toBe('forbidden');
    expect(reads.n).toBe(1);
  });

  it('reuses a project policy briefly, and forgets it at once when this process revokes', async () => {
    const { limits, reads } = setup(['trusted']);
    await limits.checkClusters('p', ['trusted']);
    await limits.checkClusters('p', ['trusted']);
    expect(reads.n).toBe(1);
    await limits.revoke('p', 'trusted');
    await limits.checkClusters('p', ['trusted']);
    expect(reads.n).toBe(2);
  });

  it("applies a project's overrides over the operator's quotas", async () => {
    const { limits } = setup([], { schedules: 3 });
    expect(await limits.quota('p', 'schedules')).toBe(3);
    expect(await limits.quota('p', 'webhooks')).toBe(20);
  });

  it('refuses to grant `default` or a malformed name with a 400', async () => {
    const { limits } = setup([]);
    expect(await statusOf(limits.grant('p', 'default'))).toBe('bad_request');
    expect(await statusOf(limits.grant('p', 'no spaces'))).toBe('bad_request');
    expect(await statusOf(limits.grant('p', '-leading'))).toBe('bad_request');
    expect(await statusOf(limits.grant('p', 'gpu.eu-1_a'))).toBe('ok');
  });
});

describe('checkQuota', () => {
  it('refuses with a 429 naming the limit once held + adding passes it', () => {
    expect(() => checkQuota('webhooks', 2, 1)).not.toThrow();
    expect(() => checkQuota('webhooks', 2, 2)).toThrow(
      'Quota exceeded: webhooks is 2 (at most 2 webhook subscriptions; the project has 2)',
    );
    expect(() => checkQuota('queuedTasks', 10, 5, 5)).not.toThrow();
    expect(() => checkQuota('queuedTasks', 10, 5, 6)).toThrow(/queued_tasks is 10/);
    try {
      checkQuota('schedules', 0, 0);
    } catch (error) {
      expect((error as KilnException).code).toBe('quota_exceeded');
    }
    expect.assertions(5);
  });
});

describe('parseQuotaOverrides', () => {
  it('reads numbers and nulls by API name, and refuses unknown names and bad values', () => {
    expect(parseQuotaOverrides({ queued_tasks: 5000, schedules: null })).toEqual({
      queuedTasks: 5000,
      schedules: null,
    });
    expect(() => parseQuotaOverrides({ queued: 1 })).toThrow('unknown quota "queued"');
    expect(() => parseQuotaOverrides({ webhooks: -1 })).toThrow(/webhooks must be at least 0/);
    expect(() => parseQuotaOverrides({ webhooks: '5' })).toThrow(/webhooks/);
  });
});
