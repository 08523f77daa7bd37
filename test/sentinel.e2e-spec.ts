import Redis from 'ioredis';
import { Client } from 'pg';
import { waitUntil } from './support/kiln';
import { OwnStack } from './support/own-stack';
import { OwnSentinelRedis, SENTINEL_NAME } from './support/sentinel';

const TASKS = 500;

/**
 * Kiln on Redis Sentinel (`REDIS_SENTINELS`, `REDIS_SENTINEL_NAME`): a stack of its own whose
 * every Redis connection asks three sentinels for the primary. The primary is killed (`kill -9`)
 * in the middle of a 500-task run; the replica takes over, every connection follows it, and the
 * reconciler re-enqueues whatever the new primary lacks: every task (and ten queued after the
 * failover, three of them delayed) ends complete, taken once (attempt 1), its log whole.
 */
describe('Redis Sentinel: the primary fails over in the middle of a run', () => {
  const stack = new OwnStack('sentinel', 110);
  const redis = new OwnSentinelRedis();
  let db: Client;
  let project: { id: string; token: string };

  const api = (method: string, path: string, json?: unknown) =>
    stack.projectApi(project)(method, path, json);
  const counts = async (): Promise<Record<string, number>> => {
    const { rows } = await db.query(
      'SELECT status, count(*)::int AS n FROM tasks WHERE project_id = $1 GROUP BY status',
      [project.id],
    );
    return Object.fromEntries(
      rows.map((row: { status: string; n: number }) => [row.status, row.n]),
    );
  };

  beforeAll(async () => {
    await redis.start();
    await stack.create({
      // The host of REDIS_URL is not used under Sentinel; pointing it at the replica shows it.
      REDIS_URL: `redis://127.0.0.1:${redis.servers[1].port}`,
      REDIS_SENTINELS: redis.sentinelList,
      REDIS_SENTINEL_NAME: SENTINEL_NAME,
      KILN_WORKER_CONCURRENCY: '8',
      // A live worker's tasks never lapse, however slow the machine (the e2e default lapse is 6 s
      // against the worker's default heartbeat of 10 s): a second attempt here is a real re-run.
      KILN_WORKER_HEARTBEAT_SECONDS: '2',
      KILN_HEARTBEAT_LAPSE_SECONDS: '30',
    });
    await stack.startApi();
    stack.start('scheduler');
    await stack.startWorker();
    db = new Client({ connectionString: stack.database.url });
    await db.connect();
    project = await stack.newProject('sentinel');
    await api('POST', '/codes', { name: 'short', image: 'kiln-test/busybox:latest' });
  }, 120_000);

  afterAll(async () => {
    await db?.end();
    await stack.close();
    await redis.stop();
  });

  it(`${TASKS} tasks, the primary killed mid-run: each ends complete, taken once, its log whole`, async () => {
    const ids: string[] = [];
    for (let from = 0; from < TASKS; from += 100) {
      const created = await api('POST', '/tasks', {
        tasks: Array.from({ length: 100 }, (_, n) => ({
          code_name: 'short',
          payload: `{"n":${from + n}}`,
        })),
      });
      ids.push(...created.tasks.map((task: { id: string }) => task.id));
    }
    // The jobs are on the primary the sentinels name.
    const before = await redis.primaryPort();
    expect(before).toBe(redis.servers[0].port);

    let seen: Record<string, number> = {};
    await waitUntil(
      'a fifth of the run complete',
      async () => {
        seen = await counts();
        return (seen.complete ?? 0) >= TASKS / 5;
      },
      { timeoutMs: 120_000, intervalMs: 200, state: () => JSON.stringify(seen) },
    );
    const { from, to } = await redis.killPrimary();
    expect({ from, to }).toEqual({ from: redis.servers[0].port, to: redis.servers[1].port });
    const atFailover = seen.complete ?? 0;
    expect(atFailover).toBeLessThan(TASKS * 0.8);

    // Tasks queued after the failover reach the new primary and run too; the delayed ones are
    // enqueued by the scheduler's reconciler when due, so its connections followed as well.
    const after = await api('POST', '/tasks', {
      tasks: Array.from({ length: 10 }, (_, n) => ({
        code_name: 'short',
        payload: `{"n":${TASKS + n}}`,
        ...(n < 3 ? { delay: 2 } : {}),
      })),
    });
    ids.push(...after.tasks.map((task: { id: string }) => task.id));

    await waitUntil(
      'every task complete',
      async () => {
        seen = await counts();
        return seen.complete === ids.length;
      },
      // About a minute on a quiet machine; a busy one runs two tasks a second.
      { timeoutMs: 330_000, intervalMs: 500, state: () => JSON.stringify(seen) },
    );
    // Taken once each (attempt 1: no second take, no lapse re-queue), each log exactly its
    // payload (the test image prints it): no task ran twice, none lost output.
    const { rows } = await db.query(
      `SELECT t.id, t.status, t.attempt, t.payload,
              (SELECT string_agg(c.data, '' ORDER BY c.seq) FROM task_log_chunks c WHERE c.task_id = t.id) AS log
         FROM tasks t WHERE t.project_id = $1`,
      [project.id],
    );
    expect(rows).toHaveLength(ids.length);
    const odd = rows.filter(
      (row: { status: string; attempt: number; payload: string; log: string }) =>
        row.status !== 'complete' || row.attempt !== 1 || row.log !== `${row.payload}\n`,
    );
    expect(odd).toEqual([]);
    expect(new Set(rows.map((row: { id: string }) => row.id))).toEqual(new Set(ids));

    // Kiln's keys live on the new primary now (its epoch marker, its queues).
    const promoted = new Redis({ host: '127.0.0.1', port: to, lazyConnect: true });
    try {
      await promoted.connect();
      expect(await promoted.exists(`${stack.env.KILN_QUEUE_PREFIX}:epoch`)).toBe(1);
      expect((await promoted.call('ROLE')) as [string]).toEqual(expect.arrayContaining(['master']));
    } finally {
      promoted.disconnect();
    }
  }, 540_000);
});
