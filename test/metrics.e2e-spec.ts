import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitUntil } from './support/kiln';
import { OwnStack } from './support/own-stack';
import { freePort, ROOT, waitForHealthy } from './support/processes';
import { promtool, TestPrometheus } from './support/prometheus';
import { Receiver } from './support/receiver';

/**
 * Issue 15, parts 1 and 2: every process serves Prometheus metrics (the API on its port, the
 * worker and the scheduler on their health ports), only to the admin token or the scrape token;
 * a real Prometheus (Debian's package, on loopback) scrapes the three processes of a stack of the
 * suite's own, and its HTTP API gives the figures of the tasks the suite ran. The alert rules pass
 * `promtool test rules`, and every process's output `promtool check metrics`.
 */
describe('metrics: Prometheus scrapes the API, the worker and the scheduler', () => {
  const stack = new OwnStack('metrics', 70);
  const scrapeToken = `scrape-${randomBytes(12).toString('hex')}`;
  const prometheus = new TestPrometheus();
  const receiver = new Receiver();
  let workerPort: number;
  let schedulerPort: number;
  let project: { id: string; token: string };
  let other: { id: string; token: string };
  const taskIds: string[] = [];

  const as = (who: { id: string; token: string }, method: string, path: string, json?: unknown) =>
    stack.request(method, `/2/projects/${who.id}${path}`, json, who.token);

  const metricsUrls = () => ({
    api: `${stack.url}/metrics`,
    worker: `http://127.0.0.1:${workerPort}/metrics`,
    scheduler: `http://127.0.0.1:${schedulerPort}/metrics`,
  });

  const scrape = async (url: string, token?: string) => {
    const res = await fetch(url, {
      headers: token === undefined ? {} : { authorization: `OAuth ${token}` },
    });
    return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
  };

  async function queue(who: { id: string; token: string }, tasks: Record<string, unknown>[]) {
    const res = await as(who, 'POST', '/tasks', { tasks });
    expect(res.status).toBe(200);
    const ids = (res.body.tasks as { id: string }[]).map((task) => task.id);
    taskIds.push(...ids);
    return ids;
  }

  async function finished(who: { id: string; token: string }, id: string) {
    let status = '';
    await waitUntil(
      `task ${id} to end`,
      async () => {
        status = (await as(who, 'GET', `/tasks/${id}`)).body.status;
        return !['queued', 'preparing', 'running'].includes(status);
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    return status;
  }

  /** Waits until Prometheus's answer to `expr` (one sample) is `expected`. */
  async function expectQuery(expr: string, expected: number, timeoutMs = 30_000) {
    let last: number | undefined;
    await waitUntil(
      `${expr} == ${expected}`,
      async () => (last = await prometheus.value(expr)) === expected,
      { timeoutMs, intervalMs: 500, state: async () => `last ${last}` },
    );
  }

  beforeAll(async () => {
    await stack.create({ KILN_METRICS_TOKEN: scrapeToken, KILN_RECONCILE_SECONDS: '1' });
    await stack.startApi();
    workerPort = await freePort();
    schedulerPort = await freePort();
    stack.start('worker', {
      KILN_WORKER_ID: `${stack.env.KILN_QUEUE_PREFIX}-worker`,
      KILN_WORKER_HEALTH_PORT: String(workerPort),
      KILN_WORKER_CONCURRENCY: '3',
    });
    stack.start('scheduler', { KILN_SCHEDULER_HEALTH_PORT: String(schedulerPort) });
    await waitForHealthy(`http://127.0.0.1:${workerPort}/healthz`);
    await waitForHealthy(`http://127.0.0.1:${schedulerPort}/healthz`);
    await receiver.start();
    project = await stack.newProject('metrics-a');
    other = await stack.newProject('metrics-b');
    for (const who of [project, other]) {
      const code = await as(who, 'POST', '/codes', {
        name: 'hello',
        image: 'kiln-test/busybox:latest',
      });
      expect(code.status).toBe(200);
    }
  }, 120_000);

  afterAll(async () => {
    await prometheus.stop();
    await receiver.close();
    await stack.close();
  });

  it('/metrics answers the admin and scrape tokens only, on every process', async () => {
    for (const [name, url] of Object.entries(metricsUrls())) {
      const none = await scrape(url);
      expect({ name, status: none.status, body: JSON.parse(none.text) }).toEqual({
        name,
        status: 401,
        body: { msg: 'Metrics need the admin token or KILN_METRICS_TOKEN' },
      });
      // A project's token (valid, with every role) reads no figures of the whole platform.
      const projectToken = await scrape(url, project.token);
      expect({ name, status: projectToken.status, body: JSON.parse(projectToken.text) }).toEqual({
        name,
        status: 401,
        body: { msg: 'This token may not read metrics' },
      });
      for (const token of [scrapeToken, stack.adminToken]) {
        const ok = await scrape(url, token);
        expect({ name, status: ok.status }).toEqual({ name, status: 200 });
        expect(ok.type).toMatch(/^text\/plain;/);
        expect(ok.type).toContain('version=0.0.4');
        expect(ok.text).toContain('process_cpu_seconds_total');
        expect(ok.text).toMatch(/^kiln_dependency_up\{dependency="postgres"\} 1$/m);
        expect(ok.text).toMatch(/^kiln_dependency_up\{dependency="redis"\} 1$/m);
      }
    }
    // The scrape token is no admin token: it opens nothing else.
    expect((await stack.request('GET', '/2/projects', undefined, scrapeToken)).status).toBe(401);
    // The worker's engine is one of its dependencies.
    const worker = await scrape(metricsUrls().worker, scrapeToken);
    expect(worker.text).toMatch(/^kiln_dependency_up\{dependency="docker"\} 1$/m);
  });

  it('counts tasks from each source and their ends; Prometheus reads them from the three processes', async () => {
    // Prometheus first: the counters grow while it scrapes, so that rate() sees them grow.
    await prometheus.start(
      [
        { job: 'kiln-api', address: `127.0.0.1:${stack.port}`, token: scrapeToken },
        { job: 'kiln-worker', address: `127.0.0.1:${workerPort}`, token: scrapeToken },
        { job: 'kiln-scheduler', address: `127.0.0.1:${schedulerPort}`, token: scrapeToken },
      ],
      [join(ROOT, 'deploy/prometheus/kiln-rules.yml')],
    );
    await waitUntil('every target scraped', async () => {
      const targets = await prometheus.targets();
      return targets.length === 3 && targets.every((target) => target.health === 'up');
    });
    expect((await prometheus.targets()).map((t) => t.job).sort()).toEqual([
      'kiln-api',
      'kiln-scheduler',
      'kiln-worker',
    ]);

    // api: two that complete, one that fails (and is retried by hand), one delayed and cancelled.
    const [ok1, ok2, failing] = await queue(project, [
      { code_name: 'hello', payload: '{}' },
      { code_name: 'hello', payload: '{}', webhook: receiver.url('/task-hook') },
      { code_name: 'hello', payload: '{"exit":3}' },
    ]);
    const [delayed] = await queue(project, [{ code_name: 'hello', payload: '{}', delay: 3600 }]);
    expect((await as(project, 'POST', `/tasks/${delayed}/cancel`)).status).toBe(200);
    expect(await finished(project, ok1)).toBe('complete');
    expect(await finished(project, ok2)).toBe('complete');
    expect(await finished(project, failing)).toBe('error');
    const retried = await as(project, 'POST', `/tasks/${failing}/retry`, {});
    expect(retried.status).toBe(200);
    const retryId = retried.body.tasks[0].id as string;
    taskIds.push(retryId);
    expect(await finished(project, retryId)).toBe('error');
    // schedule: one run, now.
    const scheduled = await as(project, 'POST', '/schedules', {
      schedules: [{ code_name: 'hello', payload: '{}', run_every: 3600, run_times: 1 }],
    });
    expect(scheduled.status).toBe(200);
    let scheduledTask = '';
    await waitUntil('the schedule to fire', async () => {
      const tasks = (await as(project, 'GET', '/tasks?per_page=100')).body.tasks as {
        id: string;
        schedule_id?: string;
      }[];
      scheduledTask = tasks.find((task) => task.schedule_id)?.id ?? '';
      return scheduledTask !== '';
    });
    taskIds.push(scheduledTask);
    expect(await finished(project, scheduledTask)).toBe('complete');
    // A task for a cluster no worker serves waits: what an autoscaler reads.
    expect((await stack.request('PUT', `/2/projects/${other.id}/clusters/idle`)).status).toBe(200);
    await queue(other, [{ code_name: 'hello', payload: '{}', cluster: 'idle', priority: 2 }]);
    await receiver.waitFor((all) => all.some((r) => r.path === '/task-hook'));

    const a = `project="${project.id}"`;
    const created = (source: string) =>
      `sum(kiln_tasks_created_total{${a},code="hello",source="${source}"})`;
    await expectQuery(created('api'), 4);
    await expectQuery(created('retry'), 1);
    await expectQuery(created('schedule'), 1);
    await expectQuery(`sum(kiln_schedule_fires_total)`, 1);
    await expectQuery(
      `sum(kiln_tasks_created_total{project="${other.id}",cluster="idle",priority="2",source="api"})`,
      1,
    );
    const ended = (status: string) => `sum(kiln_tasks_finished_total{${a},status="${status}"})`;
    await expectQuery(ended('complete'), 3);
    await expectQuery(ended('error'), 2);
    await expectQuery(ended('cancelled'), 1);
    // Five containers ran: each waited in the queue, started and ran once.
    await expectQuery(`sum(kiln_task_queue_wait_seconds_count{cluster="default"})`, 5);
    await expectQuery(`sum(kiln_container_start_seconds_count)`, 5);
    await expectQuery(`sum(kiln_task_run_duration_seconds_count{status="error"})`, 2);
    await expectQuery(`sum(kiln_task_run_duration_seconds_count{status="complete"})`, 3);
    // The leader, the worker's slots, the queue of the cluster nobody serves.
    await expectQuery(`kiln_scheduler_leader{job="kiln-scheduler"}`, 1);
    await expectQuery(`sum(kiln_worker_slots{job="kiln-worker"})`, 3);
    await expectQuery(`kiln_worker_slots{state="free"}`, 3);
    await expectQuery(`kiln_queue_depth{cluster="idle",priority="2"}`, 1);
    await expectQuery(`kiln_queue_oldest_age_seconds{cluster="idle"} > bool 0`, 1);
    await expectQuery(`count(kiln_dependency_up == 1)`, 7); // postgres, redis ×3; docker
    // The task's own webhook (told of its final status), delivered.
    await expectQuery(`sum(kiln_webhook_deliveries_total{result="delivered"})`, 1);
    await expectQuery(`sum(kiln_webhook_delivery_lag_seconds_count)`, 1);
    await expectQuery(`kiln_webhook_backlog`, 0);
    // Requests by route template, never by id.
    await expectQuery(
      `sum(kiln_http_requests_total{method="POST",route="/2/projects/:projectId/tasks",status="200"}) >= bool 3`,
      1,
    );
    const routes = (await prometheus.query(`count by (route) (kiln_http_requests_total)`)).map(
      (sample) => sample.metric.route,
    );
    expect(routes).toContain('/2/projects/:projectId/tasks/:taskId');
    for (const route of routes) expect(route).not.toMatch(/[0-9a-f]{24}/);
    // The recording rules evaluate on the real figures; no alert of the rules fires.
    await expectQuery(`kiln:queue_depth{cluster="idle",priority="2"}`, 1);
    // rate() sees a counter grow only between two of its samples: a series first scraped at its
    // final value (both errors ended between two scrapes, on a loaded machine) has a rate of 0.
    // One more of each now that Prometheus holds both series, so that both are seen to grow.
    const [okLate, failingLate] = await queue(project, [
      { code_name: 'hello', payload: '{}' },
      { code_name: 'hello', payload: '{"exit":3}' },
    ]);
    expect(await finished(project, okLate)).toBe('complete');
    expect(await finished(project, failingLate)).toBe('error');
    await expectQuery(ended('complete'), 4);
    await expectQuery(ended('error'), 3);
    await waitUntil('the failure ratio recorded', async () => {
      const ratio = await prometheus.value(`kiln:tasks_failed:ratio5m{cluster="default"}`);
      return ratio !== undefined && ratio > 0 && ratio < 1;
    });
    await expectQuery(
      `count(ALERTS{alertname=~"KilnNoSchedulerLeader|KilnWorkersGone"}) or vector(0)`,
      0,
    );
    // Every figure of the Grafana dashboard is a query Prometheus answers.
    const dashboard = JSON.parse(
      readFileSync(join(ROOT, 'deploy/grafana/kiln-dashboard.json'), 'utf8'),
    ) as { panels: { title: string; targets: { expr: string }[] }[] };
    expect(dashboard.panels.length).toBeGreaterThan(10);
    for (const panel of dashboard.panels) {
      for (const target of panel.targets) await prometheus.query(target.expr);
    }
    await expectQuery(`kiln:worker_slots_busy:ratio{cluster="default"}`, 0);
  }, 180_000);

  it('shows no task id, payload or token; every output passes promtool check metrics', async () => {
    for (const [name, url] of Object.entries(metricsUrls())) {
      const { text } = await scrape(url, scrapeToken);
      for (const id of taskIds) {
        expect({ name, leaks: text.includes(id) }).toEqual({ name, leaks: false });
      }
      for (const secret of [project.token, other.token, scrapeToken, stack.adminToken]) {
        expect({ name, leaks: text.includes(secret) }).toEqual({ name, leaks: false });
      }
      expect(text).not.toContain('"exit"');
      promtool(['check', 'metrics'], text);
    }
  });

  it('the alert rules pass promtool check rules and promtool test rules', () => {
    const dir = join(ROOT, 'deploy/prometheus');
    expect(promtool(['check', 'rules', join(dir, 'kiln-rules.yml')])).toMatch(/SUCCESS/);
    expect(promtool(['test', 'rules', join(dir, 'kiln-rules.test.yml')])).toMatch(/SUCCESS/);
  });

  it('KILN_METRICS_PROJECT_LABELS=0 drops the project and code labels', async () => {
    await stack.stopProcesses();
    await stack.startApi({ KILN_METRICS_PROJECT_LABELS: '0' });
    await queue(project, [{ code_name: 'hello', payload: '{}', delay: 3600 }]);
    const { text } = await scrape(metricsUrls().api, scrapeToken);
    expect(text).toMatch(
      /^kiln_tasks_created_total\{cluster="default",priority="0",source="api"\} 1$/m,
    );
    expect(text).not.toContain(project.id);
    expect(text).not.toMatch(/code="/);
  });

  it('KILN_METRICS_PORT moves /metrics off the public router; KILN_METRICS=0 serves none', async () => {
    await stack.stopProcesses();
    const port = await freePort();
    await stack.startApi({ KILN_METRICS_PORT: String(port) });
    const onPublic = await scrape(`${stack.url}/metrics`, scrapeToken);
    expect(onPublic.status).toBe(404);
    const own = await scrape(`http://127.0.0.1:${port}/metrics`, scrapeToken);
    expect(own.status).toBe(200);
    expect(own.text).toContain('kiln_http_requests_total');
    expect((await scrape(`http://127.0.0.1:${port}/metrics`)).status).toBe(401);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);

    await stack.stopProcesses();
    await stack.startApi({ KILN_METRICS: '0' });
    expect((await scrape(`${stack.url}/metrics`, stack.adminToken)).status).toBe(404);
  });
});
