import type { ChildProcess } from 'node:child_process';
import Redis from 'ioredis';
import { Client } from 'pg';
import { taskQueueName } from '@kiln/queue';
import {
  call,
  e2e,
  grantCluster,
  newProject,
  registerCode,
  TestProject,
  waitForTask,
  waitUntil,
} from './support/kiln';
import { OwnStack } from './support/own-stack';
import { sleep, startWorker, stopApp } from './support/processes';

/**
 * Two scheduler replicas against a database of their own (so the suite's shared scheduler stays
 * out of the election): `kill -9` the leader while a schedule is due every few seconds; the other
 * takes over within the lease, and every due instant yields exactly one task.
 */
describe('scheduler failover', () => {
  const LEASE_SECONDS = 3;
  const EVERY_SECONDS = 5;
  const stack = new OwnStack('failover', 20);
  let db: Client;

  beforeAll(async () => {
    await stack.create({ KILN_LEADER_LEASE_SECONDS: String(LEASE_SECONDS) });
    await stack.startApi();
    db = new Client({ connectionString: stack.database.url });
    await db.connect();
  });

  afterAll(async () => {
    await db.end();
    await stack.close();
  });

  const api = async (method: string, path: string, token: string, json?: unknown) =>
    (await stack.request(method, path, json, token)).body;

  interface Lease {
    holder: string;
    term: number;
  }

  async function lease(): Promise<Lease | undefined> {
    const rows = await db.query(
      `SELECT holder, term FROM leader_leases WHERE name = 'scheduler' AND expires_at > now()`,
    );
    return rows.rows[0]
      ? { holder: rows.rows[0].holder, term: Number(rows.rows[0].term) }
      : undefined;
  }

  it('kill -9 of the leader: the other replica takes over within the lease, no instant lost or doubled', async () => {
    const project = await stack.newProject('failover');
    const { token } = project;
    await api('POST', `/2/projects/${project.id}/codes`, token, {
      name: 'tick',
      image: 'kiln-test/busybox:latest',
    });
    const replicas = new Map<string, ChildProcess>();
    for (const name of ['sched-a', 'sched-b']) {
      replicas.set(name, stack.start('scheduler', { KILN_SCHEDULER_ID: name }, name));
    }
    let first!: Lease | undefined;
    await waitUntil('a leader', async () => (first = await lease()) !== undefined, {
      timeoutMs: 10_000,
    });
    expect(first).toBeDefined();
    const created = await api('POST', `/2/projects/${project.id}/schedules`, token, {
      schedules: [{ code_name: 'tick', payload: '{}', cron: '* * * * *' }],
    });
    const scheduleId = created.schedules[0].id;
    // The API refuses a seconds field; one stored before that still fires, here every few
    // seconds from the next instant (as the API set it for such a cron: 0 to 5 s out), which
    // keeps this test short.
    await db.query(
      `UPDATE schedules SET cron = $2,
              next_start = to_timestamp(ceil(extract(epoch FROM now()) / $3) * $3)
        WHERE id = $1`,
      [scheduleId, `*/${EVERY_SECONDS} * * * * *`, EVERY_SECONDS],
    );
    // A fixed stretch, not a wait for something: two periods of the schedule under the first leader.
    await sleep(2 * EVERY_SECONDS * 1000);

    const killedAt = Date.now();
    replicas.get(first!.holder)!.kill('SIGKILL');
    let next!: Lease | undefined;
    await waitUntil(
      'the other replica leading',
      async () => (next = await lease()) !== undefined && next.holder !== first!.holder,
      {
        timeoutMs: killedAt + (LEASE_SECONDS + 2) * 1000 - Date.now(),
        intervalMs: 50,
        state: () => `lease ${JSON.stringify(next)}`,
      },
    );
    const takeover = Date.now() - killedAt;
    expect(takeover).toBeLessThanOrEqual(LEASE_SECONDS * 1000);
    expect(next!.term).toBe(first!.term + 1);

    // A fixed stretch again: three more periods, under the new leader.
    await sleep(3 * EVERY_SECONDS * 1000);
    await api('POST', `/2/projects/${project.id}/schedules/${scheduleId}/cancel`, token);
    const rows = await db.query(
      'SELECT scheduled_for FROM tasks WHERE schedule_id = $1 ORDER BY scheduled_for',
      [scheduleId],
    );
    const instants = rows.rows.map((row: { scheduled_for: Date }) => row.scheduled_for.getTime());
    expect(instants.length).toBeGreaterThanOrEqual(5);
    expect(new Set(instants).size).toBe(instants.length);
    // Consecutive instants, none skipped across the handover.
    for (let i = 1; i < instants.length; i++) {
      expect(instants[i] - instants[i - 1]).toBe(EVERY_SECONDS * 1000);
    }
    for (const instant of instants) expect(instant % (EVERY_SECONDS * 1000)).toBe(0);
  });
});

/** Redis forgetting everything must not lose queued tasks, nor run any twice. */
describe('Redis data loss', () => {
  let project: TestProject;

  beforeAll(async () => {
    project = await newProject('flushall');
    await registerCode(project, 'survivor');
  });

  it('FLUSHDB (Redis forgets everything) with 100 queued tasks: all 100 run, none twice', async () => {
    const cluster = `flush-${Date.now()}`;
    await grantCluster(project, cluster);
    const ids: string[] = [];
    for (let batch = 0; batch < 2; batch++) {
      const res = await call('POST', `/2/projects/${project.projectId}/tasks`, {
        token: project.token,
        json: {
          tasks: Array.from({ length: 50 }, (_, i) => ({
            code_name: 'survivor',
            payload: `{"n":${batch * 50 + i}}`,
            cluster,
          })),
        },
      });
      expect(res.status).toBe(200);
      ids.push(...res.body.tasks.map((t: { id: string }) => t.id));
    }
    const redis = new Redis(e2e().env.REDIS_URL);
    try {
      const prefix = e2e().env.KILN_QUEUE_PREFIX;
      const wait = `${prefix}:${taskQueueName(cluster, project.projectId, 0)}:wait`;
      expect(await redis.llen(wait)).toBe(100);
      await redis.flushdb();
      expect(await redis.llen(wait)).toBe(0);
    } finally {
      redis.disconnect();
    }
    const worker = await startWorker(
      {
        ...e2e().env,
        KILN_WORKER_ID: `${cluster}-w`,
        KILN_WORKER_CLUSTER: cluster,
        KILN_WORKER_CONCURRENCY: '8',
        KILN_WORKER_HEARTBEAT_SECONDS: '1',
      },
      `${cluster}-w`,
    );
    try {
      const done = [];
      for (const id of ids) done.push(await waitForTask(project, id, undefined, 120_000));
      expect(done.every((task) => task.status === 'complete')).toBe(true);
      // run_times counts the times a worker took the task: once each.
      expect(done.map((task) => task.run_times)).toEqual(ids.map(() => 1));
    } finally {
      await stopApp(worker);
    }
  }, 240_000);
});
