import { INestApplicationContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { getDataSourceToken } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { newId } from '@kiln/common';
import { ConfigModule } from '@kiln/config';
import { DatabaseModule } from '@kiln/database';
import { QueueModule } from '@kiln/queue';
import { RedisModule } from '@kiln/redis';
import { TaskRetentionStore, TasksModule } from '@kiln/tasks';
import { WebhookOutbox, WebhooksModule } from '@kiln/webhooks';
import { OwnDatabase } from '../support/database';
import { testRedisUrl } from '../support/redis';

const DAY_MS = 86_400_000;

/**
 * Retention's statements against real Postgres, in-process: which tasks a batch deletes (and
 * which it never does), the logs and deliveries that go with them, projects with their own
 * retention, the walk from project to project, and rows another transaction holds. A database
 * of this file's own.
 */
describe('TaskRetentionStore against Postgres', () => {
  const database = new OwnDatabase('kiln_int_retention');
  let app: INestApplicationContext;
  let store: TaskRetentionStore;
  let outbox: WebhookOutbox;
  let db: DataSource;
  // Three projects, in id order: a (default 30 days), b (its own: 1 day), c (its own: 365 days).
  const [a, b, c] = [newId(), newId(), newId()].sort();

  beforeAll(async () => {
    await database.create();
    process.env.DATABASE_URL = database.url;
    process.env.REDIS_URL = testRedisUrl();
    process.env.KILN_QUEUE_PREFIX = `kiln-int-${a}`;
    const module = await Test.createTestingModule({
      imports: [
        ConfigModule,
        DatabaseModule.forRoot(),
        QueueModule,
        RedisModule,
        TasksModule,
        WebhooksModule,
      ],
    }).compile();
    app = await module.init();
    store = app.get(TaskRetentionStore);
    outbox = app.get(WebhookOutbox);
    db = app.get(getDataSourceToken());
    await db.query(
      `INSERT INTO projects (id, name, retention_days) VALUES ($1, 'a', NULL), ($2, 'b', 1), ($3, 'c', 365)`,
      [a, b, c],
    );
  });

  afterAll(async () => {
    await app?.close();
    await database.drop();
  });

  beforeEach(async () => {
    await db.query(`DELETE FROM tasks`);
    await db.query(`DELETE FROM webhook_deliveries`);
  });

  interface TaskRow {
    project: string;
    status: string;
    /** Days since it ended (null: no end_time) and since it was created (default: as ended). */
    endedDaysAgo: number | null;
    createdDaysAgo?: number;
    originalTaskId?: string;
  }

  async function insertTask(row: TaskRow): Promise<string> {
    const id = newId();
    const now = Date.now();
    const ended = row.endedDaysAgo === null ? null : new Date(now - row.endedDaysAgo * DAY_MS);
    const created = new Date(now - (row.createdDaysAgo ?? row.endedDaysAgo ?? 0) * DAY_MS);
    await db.query(
      `INSERT INTO tasks (id, project_id, code_id, code_revision_id, code_name, code_rev, status,
                          priority, payload, timeout, cluster, run_at, created_at, updated_at,
                          end_time, original_task_id)
       VALUES ($1, $2, 'c', 'r', 'c', 1, $3, 0, '{}', 60, 'default', $4, $4, $4, $5, $6)`,
      [id, row.project, row.status, created, ended, row.originalTaskId ?? null],
    );
    return id;
  }

  async function addLog(taskId: string): Promise<void> {
    await db.query(
      `INSERT INTO task_log_chunks (task_id, seq, stream, data) VALUES ($1, 0, 1, 'x'), ($1, 1, 2, 'y')`,
      [taskId],
    );
  }

  async function addDelivery(
    project: string,
    taskId: string | null,
    state: string,
    updatedDaysAgo = 0,
  ): Promise<string> {
    const [row] = await db.query<{ id: string }[]>(
      `INSERT INTO webhook_deliveries (id, seq, project_id, url, message_id, event_type, task_id,
                                       body, state, created_at, updated_at, next_attempt_at)
       SELECT kiln_delivery_id(s), s, $1, 'https://example.com/hook', 'msg', 'task.complete', $2,
              '{}', $3, now(), now() - make_interval(days => $4), now()
         FROM nextval('webhook_delivery_seq') s
       RETURNING id`,
      [project, taskId, state, updatedDaysAgo],
    );
    return row.id;
  }

  const remaining = async (table: string, column = 'id'): Promise<string[]> =>
    (await db.query<{ id: string }[]>(`SELECT ${column} AS id FROM ${table} ORDER BY 1`)).map(
      (row) => row.id,
    );

  async function purgeAll(limit: number): Promise<{ batches: number; tasks: number }> {
    let from = '';
    let batches = 0;
    let tasks = 0;
    for (;;) {
      const batch = await store.purgeBatch(from, 30, limit);
      batches++;
      tasks += batch.tasks;
      expect(batch.tasks).toBeLessThanOrEqual(limit);
      if (batch.tasks < limit || batch.lastProjectId === null) return { batches, tasks };
      from = batch.lastProjectId;
    }
  }

  it("deletes finished tasks past their project's retention, never live ones, never recent ones", async () => {
    const doomed: string[] = [];
    const kept: string[] = [];
    for (const status of ['complete', 'error', 'cancelled', 'killed', 'timeout']) {
      doomed.push(await insertTask({ project: a, status, endedDaysAgo: 31 }));
      kept.push(await insertTask({ project: a, status, endedDaysAgo: 29 }));
      doomed.push(await insertTask({ project: b, status, endedDaysAgo: 2 }));
      kept.push(await insertTask({ project: b, status, endedDaysAgo: 0.5 }));
      kept.push(await insertTask({ project: c, status, endedDaysAgo: 300 }));
      doomed.push(await insertTask({ project: c, status, endedDaysAgo: 366 }));
    }
    // Created long ago but ended lately: the end counts, not the creation.
    kept.push(
      await insertTask({ project: a, status: 'complete', endedDaysAgo: 1, createdDaysAgo: 90 }),
    );
    // Never ran, no end recorded: its creation counts.
    doomed.push(
      await insertTask({ project: a, status: 'cancelled', endedDaysAgo: null, createdDaysAgo: 31 }),
    );
    for (const status of ['queued', 'preparing', 'running']) {
      for (const project of [a, b, c]) {
        kept.push(await insertTask({ project, status, endedDaysAgo: null, createdDaysAgo: 400 }));
      }
    }

    const { tasks } = await purgeAll(4);
    expect(tasks).toBe(doomed.length);
    expect(await remaining('tasks')).toEqual([...kept].sort());
  });

  it("takes the tasks' log chunks and deliveries with them; other deliveries stay", async () => {
    const old = await insertTask({ project: a, status: 'complete', endedDaysAgo: 40 });
    const recent = await insertTask({ project: a, status: 'complete', endedDaysAgo: 1 });
    await addLog(old);
    await addLog(recent);
    // A pending delivery of an old task goes too: its task is gone.
    await addDelivery(a, old, 'pending');
    await addDelivery(a, old, 'delivered');
    const recentDelivery = await addDelivery(a, recent, 'delivered');
    const scheduleDelivery = await addDelivery(a, null, 'delivered');

    const batch = await store.purgeBatch('', 30, 1000);
    expect(batch).toEqual({ tasks: 1, lastProjectId: a });
    expect(await remaining('task_log_chunks', 'DISTINCT task_id')).toEqual([recent]);
    expect(await remaining('webhook_deliveries')).toEqual(
      [recentDelivery, scheduleDelivery].sort(),
    );
  });

  it('walks the projects in id order: a batch starts at the project it is given', async () => {
    const inA = await insertTask({ project: a, status: 'complete', endedDaysAgo: 40 });
    for (let i = 0; i < 3; i++) {
      await insertTask({ project: b, status: 'error', endedDaysAgo: 5 });
      await insertTask({ project: c, status: 'error', endedDaysAgo: 400 });
    }

    // From b: a's task is not looked at.
    const first = await store.purgeBatch(b, 30, 4);
    expect(first).toMatchObject({ tasks: 4, lastProjectId: c });
    const second = await store.purgeBatch(c, 30, 4);
    expect(second).toMatchObject({ tasks: 2, lastProjectId: c });
    expect(await remaining('tasks')).toEqual([inA]);
  });

  it('a retry outlives its original: it stays, and still reads', async () => {
    const original = await insertTask({ project: a, status: 'error', endedDaysAgo: 31 });
    const retry = await insertTask({
      project: a,
      status: 'complete',
      endedDaysAgo: 29,
      originalTaskId: original,
    });
    await db.query(`UPDATE tasks SET retry_task_id = $2 WHERE id = $1`, [original, retry]);
    await store.purgeBatch('', 30, 1000);
    const [row] = await db.query<{ id: string; original_task_id: string }[]>(
      `SELECT id, original_task_id FROM tasks`,
    );
    expect(row).toEqual({ id: retry, original_task_id: original });
  });

  it('skips a row another transaction holds instead of waiting for it, and takes it later', async () => {
    const held = await insertTask({ project: a, status: 'error', endedDaysAgo: 40 });
    await insertTask({ project: a, status: 'error', endedDaysAgo: 40 });
    const runner = db.createQueryRunner();
    await runner.connect();
    try {
      await runner.startTransaction();
      await runner.query(`SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE`, [held]);
      const started = Date.now();
      const batch = await store.purgeBatch('', 30, 1000);
      expect(batch.tasks).toBe(1);
      expect(Date.now() - started).toBeLessThan(5000);
      expect(await remaining('tasks')).toEqual([held]);
    } finally {
      await runner.rollbackTransaction();
      await runner.release();
    }
    expect((await store.purgeBatch('', 30, 1000)).tasks).toBe(1);
    expect(await remaining('tasks')).toEqual([]);
  });

  it('prunes finished deliveries past the webhook retention in batches; pending and recent ones stay', async () => {
    const kept = [
      await addDelivery(a, null, 'pending', 100),
      await addDelivery(a, null, 'delivered', 6),
      await addDelivery(b, null, 'failed', 6),
    ];
    for (const state of ['delivered', 'failed', 'dropped', 'delivered', 'failed']) {
      await addDelivery(a, null, state, 8);
    }
    expect(await outbox.prune(7, 2)).toBe(2);
    expect(await outbox.prune(7, 2)).toBe(2);
    expect(await outbox.prune(7, 2)).toBe(1);
    expect(await outbox.prune(7, 2)).toBe(0);
    expect(await remaining('webhook_deliveries')).toEqual(kept.sort());
  });
});
