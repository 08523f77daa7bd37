import Redis from 'ioredis';
import { Client } from 'pg';
import { call, e2e, getTask, registerCode, TestProject, waitForTask } from './support/kiln';
import { OwnStack } from './support/own-stack';
import { waitForHealthy } from './support/processes';
import { TcpProxy } from './support/proxy';

/**
 * Postgres or Redis going away answers 503 (clients retry), never 500. A stack of its own (API,
 * worker and scheduler) whose API talks to them through proxies that this test cuts, so the other
 * suites are not disturbed; its worker and scheduler reach them directly.
 */
describe('health and outages', () => {
  const stack = new OwnStack('outages', 10);
  let project: TestProject;
  let pg: TcpProxy;
  let redis: TcpProxy;

  const request = async (method: string, path: string, json?: unknown) =>
    stack.request(method, path, json, project.token);

  beforeAll(async () => {
    await stack.create();
    const pgUrl = new URL(stack.env.DATABASE_URL);
    const redisUrl = new URL(stack.env.REDIS_URL);
    pg = new TcpProxy(pgUrl.hostname, Number(pgUrl.port));
    redis = new TcpProxy(redisUrl.hostname, Number(redisUrl.port));
    pgUrl.port = String(await pg.start());
    redisUrl.port = String(await redis.start());
    await stack.startApi({ DATABASE_URL: pgUrl.toString(), REDIS_URL: redisUrl.toString() });
    stack.start('scheduler');
    await stack.startWorker();
    const { id, token } = await stack.newProject('outages');
    project = { projectId: id, token, url: stack.url };
    await registerCode(project, 'outage');
  });

  afterAll(async () => {
    await stack.close();
    await pg.close();
    await redis.close();
  });

  it('reports Postgres and Redis on the API, and Docker too on a worker, to the admin alone', async () => {
    const { adminToken } = e2e();
    const health = await call('GET', '/healthz', { token: adminToken });
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: 'ok', checks: { postgres: 'ok', redis: 'ok' } });
    // Anyone else learns ok or not, nothing more: without a token, or with a project's token.
    expect((await call('GET', '/healthz')).body).toEqual({ status: 'ok' });
    expect((await call('GET', '/healthz', { token: project.token })).body).toEqual({
      status: 'ok',
    });
    const worker = await fetch(e2e().workerHealthUrl, {
      headers: { authorization: `OAuth ${adminToken}` },
    });
    expect(worker.status).toBe(200);
    expect(await worker.json()).toMatchObject({
      status: 'ok',
      checks: { postgres: 'ok', redis: 'ok', docker: 'ok' },
    });
    const anonymous = await fetch(e2e().workerHealthUrl);
    expect(anonymous.status).toBe(200);
    expect(await anonymous.json()).toEqual({ status: 'ok' });
  });

  it('Postgres down: 503 with msg, then recovery without a restart', async () => {
    await pg.cut();
    try {
      const list = await request('GET', `/2/projects/${project.projectId}/tasks`);
      expect(list.status).toBe(503);
      expect(list.body.msg).toMatch(/Database unavailable/);
      const create = await request('POST', `/2/projects/${project.projectId}/tasks`, {
        tasks: [{ code_name: 'outage' }],
      });
      expect(create.status).toBe(503);
      const health = await stack.request('GET', '/healthz');
      expect(health.status).toBe(503);
      expect(health.body.checks.postgres).toMatch(/^error/);
      expect(health.body.checks.redis).toBe('ok');
      // The error (it names the database's host and port) is for the admin's eyes only.
      const anonymous = await fetch(`${stack.url}/healthz`);
      expect(anonymous.status).toBe(503);
      expect(await anonymous.json()).toEqual({ status: 'unavailable' });
    } finally {
      await pg.restore();
    }
    await waitForHealthy(`${stack.url}/healthz`);
    const list = await request('GET', `/2/projects/${project.projectId}/tasks`);
    expect(list.status).toBe(200);
    expect(list.body.tasks).toEqual([]);
  });

  it('Redis down: health is 503, a created task is kept and runs once Redis is back', async () => {
    await redis.cut();
    let id: string;
    try {
      const health = await stack.request('GET', '/healthz');
      expect(health.status).toBe(503);
      expect(health.body.checks.redis).toMatch(/^error/);
      // The task is committed in Postgres before Redis is asked: it is accepted, not lost.
      const create = await request('POST', `/2/projects/${project.projectId}/tasks`, {
        tasks: [{ code_name: 'outage', payload: '{"after":"outage"}' }],
      });
      expect(create.status).toBe(200);
      id = create.body.tasks[0].id;
      // Kept: it reads back. The worker and the scheduler reach Redis directly (only the API's
      // Redis is cut), so the reconciler may hand it over and a worker may run it before the API's
      // Redis is back: any status of a task on its way, none of a lost or failed one.
      expect(['queued', 'preparing', 'running', 'complete']).toContain(
        (await getTask(project, id)).status,
      );
    } finally {
      await redis.restore();
    }
    const task = await waitForTask(project, id);
    expect(task.status).toBe('complete');
  });

  /**
   * Inserts a queued task of code `outage` stamped as enqueued `stampedAgo` (an SQL interval) ago,
   * with no job in Redis: what a process that died at the wrong moment leaves behind.
   */
  async function plantStampedTask(marker: string, stampedAgo: string): Promise<string> {
    const id = `${Math.floor(Date.now() / 1000).toString(16)}${marker.repeat(16)}`;
    const db = new Client({ connectionString: stack.database.url });
    await db.connect();
    try {
      await db.query(
        `INSERT INTO tasks (id, project_id, code_id, code_revision_id, code_name, code_rev, status, priority,
                            payload, timeout, cluster, run_at, enqueued_at, created_at, updated_at)
         SELECT $1, project_id, id, latest_revision_id, name, rev, 'queued', 0, '{}', 60,
                'default', now(), now() - $3::interval, now(), now()
           FROM codes WHERE project_id = $2 AND name = 'outage'`,
        [id, project.projectId, stampedAgo],
      );
    } finally {
      await db.end();
    }
    return id;
  }

  it('an API killed between its INSERT and the enqueue loses nothing: the task still runs', async () => {
    // What such an API leaves behind: a committed, stamped task with no job in Redis.
    const id = await plantStampedTask('a', '15 seconds');
    const task = await waitForTask(project, id, undefined, 60_000);
    expect(task).toMatchObject({ status: 'complete', run_times: 1 });
  });

  it('a worker killed between claiming a job and taking its task loses nothing: the task runs', async () => {
    // What such a worker leaves behind: a task queued long ago (past the API check's two-minute
    // window), its job gone from Redis, and the worker's claim on it.
    const id = await plantStampedTask('b', '10 minutes');
    const redis = new Redis(stack.env.REDIS_URL);
    try {
      const [seconds] = await redis.time();
      const claims = `${stack.env.KILN_QUEUE_PREFIX}:task-claims`;
      await redis.zadd(claims, (Number(seconds) - 1) * 1000, `${id}:dead-worker`);
      const task = await waitForTask(project, id, undefined, 60_000);
      expect(task).toMatchObject({ status: 'complete', run_times: 1 });
      expect(await redis.zscore(claims, `${id}:dead-worker`)).toBeNull();
    } finally {
      redis.disconnect();
    }
  });
});
