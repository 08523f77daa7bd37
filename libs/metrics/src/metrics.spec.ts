import type { KilnConfig } from '@kiln/config';
import { KilnMetrics, TaskTally } from './metrics';
import { scrapeAccess } from './scrape-auth';

const configWith = (metrics: Partial<KilnConfig['metrics']>, adminToken?: string) =>
  ({
    adminToken,
    metrics: {
      enabled: true,
      projectLabels: true,
      token: undefined,
      apiPort: 0,
      apiHost: '127.0.0.1',
      ...metrics,
    },
  }) as KilnConfig;

const task = { projectId: 'p'.repeat(24), codeName: 'hello', cluster: 'default', priority: 1 };

describe('KilnMetrics', () => {
  it('counts a batch once per label set, with project and code labels', async () => {
    const metrics = new KilnMetrics(configWith({}));
    metrics.register('api');
    metrics.tasksQueuedBatch([task, task, { ...task, priority: 2 }], 'api');
    const { body } = await metrics.exposition();
    expect(body).toContain(
      `kiln_tasks_created_total{project="${task.projectId}",code="hello",cluster="default",priority="1",source="api"} 2`,
    );
    expect(body).toContain('priority="2",source="api"} 1');
  });

  it('tallies runs of equal labels, and labels that come back after another', async () => {
    const metrics = new KilnMetrics(configWith({ projectLabels: false }));
    metrics.register('api');
    const tally = new TaskTally(metrics, 'trigger');
    for (const priority of [0, 0, 2, 0, 2, 2, 0]) tally.add('p', 'c', 'default', priority);
    tally.flush();
    const { body } = await metrics.exposition();
    expect(body).toContain('{cluster="default",priority="0",source="trigger"} 4');
    expect(body).toContain('{cluster="default",priority="2",source="trigger"} 3');
  });

  it('drops project and code labels when told (cardinality)', async () => {
    const metrics = new KilnMetrics(configWith({ projectLabels: false }));
    metrics.register('worker');
    metrics.taskFinished(task, 'complete');
    const { body } = await metrics.exposition();
    expect(body).toContain(
      'kiln_tasks_finished_total{cluster="default",priority="1",status="complete"} 1',
    );
    expect(body).not.toContain(task.projectId);
  });

  it("shows each role's metrics and the process's own", async () => {
    const body = async (role: 'api' | 'worker' | 'scheduler') => {
      const metrics = new KilnMetrics(configWith({}));
      metrics.register(role);
      return (await metrics.exposition()).body;
    };
    const api = await body('api');
    expect(api).toContain('# TYPE kiln_http_requests_total counter');
    expect(api).not.toContain('kiln_scheduler_leader');
    expect(api).toContain('process_cpu_seconds_total');
    expect(api).toMatch(/^process_cpu_seconds_total \d/m);
    expect(api).toMatch(/^process_resident_memory_bytes \d+$/m);
    expect(api).toMatch(/^nodejs_heap_size_used_bytes \d+$/m);
    expect(await body('scheduler')).toContain('kiln_scheduler_leader');
    expect(await body('worker')).toContain('kiln_worker_slots');
  });

  it('counts nothing and shows nothing when off', async () => {
    const metrics = new KilnMetrics(configWith({ enabled: false }));
    metrics.register('api');
    metrics.tasksQueued(task, 'api');
    expect((await metrics.exposition()).body.trim()).toBe('');
  });

  it('keeps the last gauges when a refresh fails', async () => {
    const metrics = new KilnMetrics(configWith({}));
    metrics.register('scheduler');
    metrics.beforeScrape(() => metrics.schedulerLeader.set(1));
    metrics.beforeScrape(() => Promise.reject(new Error('Postgres away')));
    expect((await metrics.exposition()).body).toMatch(/^kiln_scheduler_leader 1$/m);
  });
});

describe('scrapeAccess', () => {
  const admin = 'admin-token-0123456789';
  const scrape = 'scrape-token-0123456789';
  it('grants the admin and the scrape token, refuses others, and tells a missing token apart', () => {
    const config = configWith({ token: scrape }, admin);
    expect(scrapeAccess(admin, config)).toBe('granted');
    expect(scrapeAccess(scrape, config)).toBe('granted');
    expect(scrapeAccess(`${scrape}x`, config)).toBe('denied');
    expect(scrapeAccess('', config)).toBe('missing');
    expect(scrapeAccess(undefined, config)).toBe('missing');
  });

  it('grants nothing when neither token is set', () => {
    expect(scrapeAccess('anything', configWith({}))).toBe('denied');
  });
});
