import type { KilnConfig } from '@kiln/config';
import { KilnMetrics } from '@kiln/metrics';
import type { QueueFigures } from '@kiln/tasks';
import type { WebhookBacklog } from '@kiln/webhooks';
import type { LeaderLease } from './leader-lease';
import { SchedulerGauges } from './scheduler-gauges';

/** The leader's gauges over a fake clock: a queue read takes `readMs` of it. */
function setup(readMs: number) {
  let now = 1_000_000;
  jest.spyOn(Date, 'now').mockImplementation(() => now);
  const metrics = new KilnMetrics({
    metrics: { enabled: true, projectLabels: true, apiPort: 0, apiHost: '127.0.0.1' },
  } as KilnConfig);
  metrics.register('scheduler');
  let reads = 0;
  const figures = {
    read: async () => {
      reads++;
      now += readMs;
      return [{ cluster: 'default', priority: 0, depth: 150_000, oldestSeconds: 12 }];
    },
  } as unknown as QueueFigures;
  const backlog = {
    read: async () => ({ due: 0, oldestSeconds: 0 }),
  } as unknown as WebhookBacklog;
  new SchedulerGauges(metrics, { isLeader: () => true } as LeaderLease, figures, backlog);
  /** Scrapes every `everyMs` for `forMs`; answers how many queue reads they made. */
  const scrape = async (everyMs: number, forMs: number) => {
    const before = reads;
    for (const end = now + forMs; now < end; now += everyMs) await metrics.exposition();
    return reads - before;
  };
  return { metrics, scrape };
}

describe('SchedulerGauges', () => {
  afterEach(() => jest.restoreAllMocks());

  it('reads the queues at most every 5 s however often it is scraped', async () => {
    const { metrics, scrape } = setup(40);
    expect(await scrape(1000, 60_000)).toBe(12);
    expect((await metrics.exposition()).body).toContain(
      'kiln_queue_depth{cluster="default",priority="0"} 150000',
    );
  });

  it('reads a queue that is slow to count less often: under 1 % of the time', async () => {
    const { scrape } = setup(300);
    const reads = await scrape(1000, 300_000);
    expect(reads).toBe(10);
    expect((reads * 300) / 300_000).toBeLessThanOrEqual(0.01);
  });
});
