import { INestApplicationContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { getDataSourceToken } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { newId } from '@kiln/common';
import { ConfigModule } from '@kiln/config';
import { DatabaseModule } from '@kiln/database';
import { QueueModule } from '@kiln/queue';
import { FeedMessage, RedisModule, TaskLogFeed } from '@kiln/redis';
import { TaskDelivery, TaskLifecycle, TasksModule, TasksService, eventOf } from '@kiln/tasks';
import { OwnDatabase } from '../support/database';
import { testRedisUrl } from '../support/redis';

/**
 * The task store against real Postgres, in-process: every compare-and-set refuses what the
 * transition table refuses (a stale attempt, a task another worker holds, a final task), and
 * allows what it allows. A database of this file's own.
 */
describe('TaskLifecycle against Postgres', () => {
  const database = new OwnDatabase('kiln_int_lifecycle');
  let app: INestApplicationContext;
  let lifecycle: TaskLifecycle;
  let tasks: TasksService;
  let db: DataSource;
  const projectId = newId();
  const codeId = newId();
  const revisionId = newId();

  beforeAll(async () => {
    await database.create();
    process.env.DATABASE_URL = database.url;
    process.env.REDIS_URL = testRedisUrl();
    process.env.KILN_QUEUE_PREFIX = `kiln-int-${projectId}`;
    const module = await Test.createTestingModule({
      imports: [ConfigModule, DatabaseModule.forRoot(), QueueModule, RedisModule, TasksModule],
    }).compile();
    app = await module.init();
    lifecycle = app.get(TaskLifecycle);
    tasks = app.get(TasksService);
    db = app.get(getDataSourceToken());
    await db.query(`INSERT INTO projects (id, name) VALUES ($1, 'int')`, [projectId]);
    await db.query(
      `INSERT INTO codes (id, project_id, name, rev, latest_revision_id, image, retries)
       VALUES ($1, $2, 'c', 1, $3, 'busybox', 1)`,
      [codeId, projectId, revisionId],
    );
    await db.query(
      `INSERT INTO code_revisions (id, code_id, project_id, rev, image) VALUES ($1, $2, $3, 1, 'busybox')`,
      [revisionId, codeId, projectId],
    );
  });

  afterAll(async () => {
    await app?.close();
    await database.drop();
  });

  async function queued(): Promise<string> {
    const id = newId();
    await db.query(
      `INSERT INTO tasks (id, project_id, code_id, code_revision_id, code_name, code_rev, status,
                          priority, payload, timeout, cluster, run_at, created_at, updated_at)
       VALUES ($1, $2, $3, $4, 'c', 1, 'queued', 0, '{}', 60, 'default', now(), now(), now())`,
      [id, projectId, codeId, revisionId],
    );
    return id;
  }
  const status = async (id: string) =>
    (await db.query(`SELECT status, attempt, worker_id FROM tasks WHERE id = $1`, [id]))[0];
  const outcome = (status: 'complete' | 'error') => ({
    status,
    msg: status === 'error' ? 'exit code 1' : '',
    exitCode: status === 'error' ? 1 : 0,
    durationMs: 5,
    logSize: 0,
  });

  it('a task is taken once: the second take, by any worker, gets nothing', async () => {
    const id = await queued();
    const [first, second] = await Promise.all([lifecycle.take(id, 'w1'), lifecycle.take(id, 'w2')]);
    expect([first, second].filter(Boolean)).toHaveLength(1);
    expect(await lifecycle.take(id, 'w3')).toBeNull();
    expect((await status(id)).attempt).toBe(1);
  });

  it("takes a worker's tasks in one statement, each once, the others as alone", async () => {
    const ids = await Promise.all([1, 2, 3, 4, 5].map(() => queued()));
    await db.query(`UPDATE tasks SET status = 'cancelled' WHERE id = $1`, [ids[3]]);
    // All at once: the first goes alone, the rest in one batch behind it (ids[1] twice).
    const taken = await Promise.all([...ids, ids[1]].map((id) => lifecycle.take(id, 'w-batch')));
    expect(taken.map((task) => task?.id ?? null)).toEqual([
      ids[0],
      ids[1],
      ids[2],
      null,
      ids[4],
      null,
    ]);
    expect(taken.filter(Boolean).every((task) => task!.attempt === 1)).toBe(true);
    const rows = await Promise.all(ids.map((id) => status(id)));
    expect(rows.map((row) => [row.status, row.attempt])).toEqual([
      ['preparing', 1],
      ['preparing', 1],
      ['preparing', 1],
      ['cancelled', 0],
      ['preparing', 1],
    ]);
  });

  it('marks many tasks running in one statement, each by its own compare-and-set', async () => {
    const ids = await Promise.all([1, 2, 3, 4, 5, 6].map(() => queued()));
    const taken = await Promise.all(ids.map(async (id) => (await lifecycle.take(id, 'w1'))!));
    const cancelled = ids[4];
    await db.query(`UPDATE tasks SET status = 'cancelled' WHERE id = $1`, [cancelled]);
    // All at once: the first goes alone, the rest in one batch behind it.
    const marked = await Promise.all([
      ...taken.map((task, i) => lifecycle.markRunning(task.id, task.attempt + (i === 2 ? 1 : 0))),
      lifecycle.markRunning(ids[0], taken[0].attempt),
    ]);
    expect(marked).toEqual([true, true, false, true, false, true, false]);
    const statuses = await Promise.all(ids.map(async (id) => (await status(id)).status));
    expect(statuses).toEqual([
      'running',
      'running',
      'preparing',
      'running',
      'cancelled',
      'running',
    ]);
  });

  it('running and finishing are compare-and-sets on the attempt', async () => {
    const id = await queued();
    const task = (await lifecycle.take(id, 'w1'))!;
    expect(await lifecycle.markRunning(id, task.attempt + 1)).toBe(false);
    expect(await lifecycle.markRunning(id, task.attempt)).toBe(true);
    expect(await lifecycle.markRunning(id, task.attempt)).toBe(false);
    expect((await lifecycle.finish(id, task.attempt + 1, outcome('complete'))).finished).toBe(
      false,
    );
    expect(await status(id)).toMatchObject({ status: 'running' });
    expect((await lifecycle.finish(id, task.attempt, outcome('complete'))).finished).toBe(true);
    expect((await lifecycle.finish(id, task.attempt, outcome('complete'))).finished).toBe(false);
    expect(await lifecycle.release(id, task.attempt)).toBe(false);
    expect(await status(id)).toMatchObject({ status: 'complete', attempt: 1 });
  });

  it('a released task is taken again as a new attempt; the old attempt can record nothing', async () => {
    const id = await queued();
    const first = (await lifecycle.take(id, 'w1'))!;
    expect(await lifecycle.release(id, first.attempt)).toBe(true);
    const second = (await lifecycle.take(id, 'w2'))!;
    expect(second.attempt).toBe(2);
    expect((await lifecycle.finish(id, first.attempt, outcome('complete'))).finished).toBe(false);
    expect(await lifecycle.heartbeat('w1', [id])).toEqual([id]);
    expect(await lifecycle.heartbeat('w2', [id])).toEqual([]);
    expect(await lifecycle.heldBy('w2')).toEqual([{ id, attempt: 2 }]);
  });

  it('a cancelled task keeps cancelled whatever its worker records; it gets the duration', async () => {
    const id = await queued();
    const task = (await lifecycle.take(id, 'w1'))!;
    await lifecycle.markRunning(id, task.attempt);
    await tasks.cancel(projectId, id);
    const result = await lifecycle.finish(id, task.attempt, outcome('error'));
    expect(result).toEqual({ finished: false, retry: null });
    const [row] = await db.query(`SELECT status, duration_ms FROM tasks WHERE id = $1`, [id]);
    expect(row).toEqual({ status: 'cancelled', duration_ms: 5 });
  });

  it('a cancel tells the live feed a queued task ended (no worker will); a taken one is left to its worker', async () => {
    const feed = app.get(TaskLogFeed);
    const [waiting, taken] = [await queued(), await queued()];
    await lifecycle.take(taken, 'w1');
    const heard: Record<string, FeedMessage[]> = { [waiting]: [], [taken]: [] };
    const unsubscribe = await Promise.all(
      [waiting, taken].map((id) => feed.subscribe(id, (message) => heard[id].push(message))),
    );
    try {
      // The taken one first: an end published for it would arrive before the queued one's.
      await tasks.cancel(projectId, taken);
      await tasks.cancel(projectId, waiting);
      const attempt = (await status(waiting)).attempt as number;
      for (let tries = 0; heard[waiting].length === 0 && tries < 300; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(heard[waiting]).toEqual([{ kind: 'end', attempt }]);
      expect(heard[taken]).toEqual([]);
    } finally {
      for (const off of unsubscribe) off();
    }
  });

  it('a failure with retries left queues one linked retry in the same transaction', async () => {
    const id = await queued();
    const task = (await lifecycle.take(id, 'w1'))!;
    const { finished, retry } = await lifecycle.finish(id, task.attempt, outcome('error'));
    expect(finished).toBe(true);
    expect(retry).toMatchObject({
      originalTaskId: id,
      retryCount: 1,
      status: 'queued',
      attempt: 0,
    });
    const [row] = await db.query(
      `SELECT status, retry_count, original_task_id FROM tasks WHERE id = $1`,
      [retry!.id],
    );
    expect(row).toEqual({ status: 'queued', retry_count: 1, original_task_id: id });
    const [original] = await db.query(`SELECT retry_task_id FROM tasks WHERE id = $1`, [id]);
    expect(original.retry_task_id).toBe(retry!.id);
  });

  it('every status change writes the event the transition table names, and only that', async () => {
    await db.query(
      `INSERT INTO webhooks (id, project_id, url, events, secret, created_at, updated_at)
       VALUES ($1, $2, 'http://127.0.0.1:9/hook', $3, 'whsec_x', now(), now())`,
      [
        newId(),
        projectId,
        ['task.queued', 'task.running', 'task.complete', 'task.error', 'task.cancelled'],
      ],
    );
    const events = async (id: string) =>
      (
        await db.query(
          `SELECT event_type FROM webhook_deliveries WHERE task_id = $1 ORDER BY seq`,
          [id],
        )
      ).map((row: { event_type: string }) => row.event_type);
    const ran = await queued(); // a raw INSERT: its task.queued comes from the insert trigger
    const first = (await lifecycle.take(ran, 'w1'))!;
    await lifecycle.release(ran, first.attempt);
    const second = (await lifecycle.take(ran, 'w1'))!;
    await lifecycle.markRunning(ran, second.attempt);
    await lifecycle.finish(ran, second.attempt, outcome('complete'));
    expect(await events(ran)).toEqual(
      ['queued', 'preparing', 'queued', 'preparing', 'running', 'complete']
        .map((status) => eventOf(status as never))
        .filter((event) => event !== null),
    );
    const cancelled = await queued();
    await tasks.cancel(projectId, cancelled);
    expect(await events(cancelled)).toEqual([eventOf('queued'), eventOf('cancelled')]);
    await db.query(`DELETE FROM webhooks WHERE project_id = $1`, [projectId]);
  });

  it('a project at its max_running waits: no worker takes past it, in any order', async () => {
    await db.query(`UPDATE projects SET max_running = 2 WHERE id = $1`, [projectId]);
    try {
      // Whatever this file left taken does not count against the limit below.
      await db.query(
        `UPDATE tasks SET status = 'complete' WHERE status IN ('preparing', 'running')`,
      );
      const ids = await Promise.all([queued(), queued(), queued(), queued()]);
      const taken = await Promise.all(ids.map((id, i) => lifecycle.take(id, `w${i}`)));
      expect(taken.filter((task) => task !== null)).toHaveLength(2);
      // The others are parked a second on: the reconciler enqueues them again.
      const waiting = ids.filter((_id, i) => taken[i] === null);
      const rows = await db.query(
        `SELECT status, enqueued_at, run_at > now() AS later FROM tasks WHERE id = ANY($1)`,
        [waiting],
      );
      expect(rows).toEqual([
        { status: 'queued', enqueued_at: null, later: true },
        { status: 'queued', enqueued_at: null, later: true },
      ]);
      // A slot freed is a slot taken.
      const done = taken.find((task) => task !== null)!;
      await lifecycle.finish(done.id, done.attempt, outcome('complete'));
      expect(await lifecycle.take(waiting[0], 'w9')).not.toBeNull();
      expect(await lifecycle.take(waiting[1], 'w9')).toBeNull();
    } finally {
      await db.query(`UPDATE projects SET max_running = NULL WHERE id = $1`, [projectId]);
    }
  });

  it("the reconciler hands a max_running project's backlog to Redis a slot's worth at a time", async () => {
    const delivery = app.get(TaskDelivery);
    await db.query(`UPDATE tasks SET status = 'complete' WHERE status = 'queued'`);
    const ids = await Promise.all([queued(), queued(), queued(), queued(), queued()]);
    const found = async () =>
      (await delivery.findUnenqueued(100)).filter((task) => ids.includes(task.id)).length;
    expect(await found()).toBe(5);
    await db.query(`UPDATE projects SET max_running = 2 WHERE id = $1`, [projectId]);
    try {
      expect(await found()).toBe(2);
    } finally {
      await db.query(`UPDATE projects SET max_running = NULL WHERE id = $1`, [projectId]);
      await db.query(`UPDATE tasks SET status = 'complete' WHERE id = ANY($1)`, [ids]);
    }
  });

  it('lapsed heartbeats: re-queued under the attempt limit, error at it; fresh ones are left alone', async () => {
    const lapsed = await queued();
    const spent = await queued();
    const fresh = await queued();
    for (const id of [lapsed, spent, fresh]) await lifecycle.take(id, 'w1');
    await db.query(`UPDATE tasks SET attempt = 3 WHERE id = $1`, [spent]);
    await db.query(`UPDATE tasks SET heartbeat_at = now() - interval '1 hour' WHERE id = ANY($1)`, [
      [lapsed, spent],
    ]);
    // The failed ones come back with the labels the scheduler counts them by (metrics).
    expect(await lifecycle.recoverLapsed(60, 3)).toEqual({
      requeued: 1,
      failed: [{ projectId, codeName: 'c', cluster: 'default', priority: 0 }],
    });
    expect(await status(lapsed)).toMatchObject({ status: 'queued', worker_id: null });
    expect(await status(spent)).toMatchObject({ status: 'error' });
    expect(await status(fresh)).toMatchObject({ status: 'preparing', worker_id: 'w1' });
  });
});
