import { INestApplicationContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { getDataSourceToken } from '@nestjs/typeorm';
import { DataSource, In } from 'typeorm';
import { newId } from '@kiln/common';
import { ConfigModule } from '@kiln/config';
import { DatabaseModule } from '@kiln/database';
import { QueueModule } from '@kiln/queue';
import { RedisModule } from '@kiln/redis';
import {
  TASK_STATUSES,
  Task,
  TaskListQuery,
  TaskStatus,
  TasksModule,
  TasksService,
} from '@kiln/tasks';
import { OwnDatabase } from '../support/database';
import { testRedisUrl } from '../support/redis';

/**
 * `GET …/tasks`'s list against Postgres: the page TaskStore.list finds (one branch per status
 * over the filter indexes, merged) is exactly the page a plain query finds (`status IN`, every
 * filter, `ORDER BY created_at DESC, id DESC`, `OFFSET`), for every filter alone and combined,
 * with and without status flags, on the first, middle and last pages; and never another
 * project's task. A database of this file's own.
 */
describe('the task list against Postgres', () => {
  const database = new OwnDatabase('kiln_int_task_list');
  let app: INestApplicationContext;
  let tasks: TasksService;
  let db: DataSource;
  const projects = [newId(), newId()];
  const base = Date.UTC(2026, 0, 1) / 1000;

  beforeAll(async () => {
    await database.create();
    process.env.DATABASE_URL = database.url;
    process.env.REDIS_URL = testRedisUrl();
    process.env.KILN_QUEUE_PREFIX = `kiln-int-${projects[0]}`;
    const module = await Test.createTestingModule({
      imports: [ConfigModule, DatabaseModule.forRoot(), QueueModule, RedisModule, TasksModule],
    }).compile();
    app = await module.init();
    tasks = app.get(TasksService);
    db = app.get(getDataSourceToken());
    for (const [p, projectId] of projects.entries()) {
      await db.query(`INSERT INTO projects (id, name) VALUES ($1, $2)`, [projectId, `list-${p}`]);
      for (const name of ['a', 'b']) {
        const codeId = newId();
        const revisionId = newId();
        await db.query(
          `INSERT INTO codes (id, project_id, name, rev, latest_revision_id, image, retries)
           VALUES ($1, $2, $3, 1, $4, 'busybox', 0)`,
          [codeId, projectId, name, revisionId],
        );
        await db.query(
          `INSERT INTO code_revisions (id, code_id, project_id, rev, image)
           VALUES ($1, $2, $3, 1, 'busybox')`,
          [revisionId, codeId, projectId],
        );
      }
      // 700 tasks: every status, two codes, a few labelled and on another cluster, two tasks in
      // each second (the id breaks the tie).
      await db.query(
        `INSERT INTO tasks (id, project_id, code_id, code_revision_id, code_name, code_rev, status,
                            priority, payload, timeout, cluster, label, run_at, created_at, updated_at)
         SELECT lpad(to_hex($4::int * 100000 + i), 24, '0'), $1, c.id, c.latest_revision_id,
                c.name, 1, ($2::text[])[1 + i % array_length($2::text[], 1)], 0, '{}', 60,
                CASE WHEN i % 7 = 0 THEN 'gpu' ELSE 'default' END,
                CASE WHEN i % 5 = 0 THEN 'nightly' ELSE '' END,
                now(), to_timestamp($3 + i / 2), now()
           FROM generate_series(1, 700) i
           JOIN codes c ON c.project_id = $1 AND c.name = CASE WHEN i % 3 = 0 THEN 'b' ELSE 'a' END`,
        [projectId, TASK_STATUSES, base, p],
      );
    }
    await db.query(`ANALYZE tasks`);
  });

  afterAll(async () => {
    await app?.close();
    await database.drop();
  });

  /** The page as the plain query finds it. */
  async function expected(projectId: string, query: TaskListQuery): Promise<string[]> {
    const where = ['project_id = $1'];
    const params: unknown[] = [projectId];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (query.statuses.length > 0) add('status = ANY (?)', query.statuses);
    if (query.codeName !== undefined) add('code_name = ?', query.codeName);
    if (query.label !== undefined) add('label = ?', query.label);
    if (query.cluster !== undefined) add('cluster = ?', query.cluster);
    if (query.fromTime) add('created_at >= ?', query.fromTime);
    if (query.toTime) add('created_at <= ?', query.toTime);
    const rows = await db.query<{ id: string }[]>(
      `SELECT id FROM tasks WHERE ${where.join(' AND ')}
        ORDER BY created_at DESC, id DESC LIMIT ${query.perPage} OFFSET ${query.page * query.perPage}`,
      params,
    );
    return rows.map((row) => row.id);
  }

  const filters: Partial<TaskListQuery>[] = [
    {},
    { codeName: 'a' },
    { codeName: 'b' },
    { codeName: 'missing' },
    { label: 'nightly' },
    { label: '' },
    { cluster: 'gpu' },
    { cluster: 'default' },
    { fromTime: new Date((base + 50) * 1000), toTime: new Date((base + 200) * 1000) },
    { codeName: 'b', label: 'nightly' },
    { codeName: 'a', cluster: 'gpu', fromTime: new Date((base + 100) * 1000) },
  ];
  const flags: TaskStatus[][] = [[], ['queued'], ['complete'], ['queued', 'running', 'error']];
  const pages: [page: number, perPage: number][] = [
    [0, 30],
    [2, 30],
    [6, 50],
    [9, 30],
    [0, 100],
  ];

  it("every filter, alone and with status flags, on every page: the plain query's page", async () => {
    let compared = 0;
    let nonEmpty = 0;
    for (const filter of filters) {
      for (const statuses of flags) {
        for (const [page, perPage] of pages) {
          const query: TaskListQuery = { ...filter, statuses, page, perPage };
          const want = await expected(projects[0], query);
          const got = (await tasks.list(projects[0], query)).tasks.map((task) => task.id);
          expect({ query, got }).toEqual({ query, got: want });
          compared++;
          if (want.length > 0) nonEmpty++;
        }
      }
    }
    expect(compared).toBe(filters.length * flags.length * pages.length);
    // The cases are not vacuous: half the pages hold tasks (the others are past the end, or of a
    // code that does not exist, and must be empty).
    expect(nonEmpty).toBeGreaterThanOrEqual(compared / 2);
  });

  it("walks every filter by cursor through exactly the plain query's list, page by page", async () => {
    let walked = 0;
    for (const filter of filters) {
      for (const statuses of flags) {
        const want = await expected(projects[0], { ...filter, statuses, page: 0, perPage: 1000 });
        const got: string[] = [];
        let cursor: TaskListQuery['cursor'] = 'first';
        for (let pages = 0; cursor && pages < 100; pages++) {
          const page = await tasks.list(projects[0], {
            ...filter,
            statuses,
            page: 0,
            perPage: 45,
            cursor,
          });
          got.push(...page.tasks.map((task) => task.id));
          expect(page.next).not.toBeUndefined();
          cursor = page.next ?? undefined;
        }
        expect({ filter, statuses, got }).toEqual({ filter, statuses, got: want });
        walked += want.length;
      }
    }
    expect(walked).toBeGreaterThan(1000);
  });

  it('searches payloads within the filters, a page of matches at a time, and finds a task by id', async () => {
    const ids = (
      await db.query<{ id: string }[]>(
        `SELECT id FROM tasks WHERE project_id = $1 AND code_name = 'b'
          ORDER BY created_at DESC, id DESC LIMIT 5`,
        [projects[0]],
      )
    ).map((row) => row.id);
    await db.query(`UPDATE tasks SET payload = '{"Needle": 1}' WHERE id = ANY($1)`, [ids]);
    const searched: string[] = [];
    let cursor: TaskListQuery['cursor'] = 'first';
    while (cursor) {
      const page = await tasks.list(projects[0], {
        statuses: [],
        codeName: 'b',
        page: 0,
        perPage: 2,
        q: 'nEEdle',
        cursor,
      });
      searched.push(...page.tasks.map((task) => task.id));
      cursor = page.next ?? undefined;
    }
    expect(searched).toEqual(ids);
    // The same text in the other project, or under another code, is not found.
    const other = await tasks.list(projects[1], {
      statuses: [],
      page: 0,
      perPage: 30,
      q: 'needle',
    });
    expect(other).toEqual({ tasks: [], next: null });
    const byId = await tasks.list(projects[0], { statuses: [], page: 0, perPage: 30, q: ids[2] });
    expect(byId.tasks.map((task) => task.id)).toEqual([ids[2]]);
    const elsewhere = await tasks.list(projects[1], {
      statuses: [],
      page: 0,
      perPage: 30,
      q: ids[2],
    });
    expect(elsewhere.tasks).toEqual([]);
  });

  it("never lists another project's tasks, whatever the filter", async () => {
    for (const filter of filters) {
      const { tasks: listed } = await tasks.list(projects[1], {
        ...filter,
        statuses: [],
        page: 0,
        perPage: 100,
      });
      expect(listed.every((task) => task.projectId === projects[1])).toBe(true);
      expect(listed.map((task) => task.id)).toEqual(
        await expected(projects[1], { ...filter, statuses: [], page: 0, perPage: 100 }),
      );
    }
  });

  it('find and list hydrate a task exactly as TypeORM does, every column set or null', async () => {
    const [plain, full] = (
      await db.query<{ id: string }[]>(
        `SELECT id FROM tasks WHERE project_id = $1 ORDER BY created_at DESC, id DESC LIMIT 2`,
        [projects[0]],
      )
    ).map((row) => row.id);
    await db.query(
      `UPDATE tasks
          SET status = 'error', attempt = 2, worker_id = 'w-1', heartbeat_at = now(),
              enqueued_at = now(), start_time = now(), end_time = now(), duration_ms = 1234,
              exit_code = 3, msg = 'exit code 3', percent = 50, log_size = 5000000000,
              original_task_id = $2, retry_task_id = $2, retry_count = 1, schedule_id = $2,
              scheduled_for = now(), webhook = 'http://127.0.0.1:1/hook', delay = 5,
              traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
        WHERE id = $1`,
      [full, plain],
    );
    const repository = db.getRepository(Task);
    for (const id of [plain, full]) {
      const typeorm = await repository.findOneBy({ id });
      expect(typeorm).not.toBeNull();
      expect(await tasks.get(projects[0], id)).toStrictEqual(typeorm);
    }
    const { tasks: listed } = await tasks.list(projects[0], { statuses: [], page: 0, perPage: 2 });
    expect(listed).toStrictEqual(
      await repository.findBy({ id: In([full, plain]) }).then(sortNewest),
    );
    // Another project's task is not found through this one.
    await expect(tasks.get(projects[1], full)).rejects.toThrow('Task not found');
  });

  it('GET task keeps working on every connection after a column is added to tasks', async () => {
    const [id] = (
      await db.query<{ id: string }[]>(`SELECT id FROM tasks WHERE project_id = $1 LIMIT 1`, [
        projects[0],
      ])
    ).map((row) => row.id);
    // Prepared on many of the pool's connections at once.
    await Promise.all(Array.from({ length: 30 }, () => tasks.get(projects[0], id)));
    await db.query(`ALTER TABLE tasks ADD COLUMN int_spec_extra integer`);
    try {
      const found = await Promise.all(Array.from({ length: 30 }, () => tasks.get(projects[0], id)));
      expect(found.every((task) => task.id === id)).toBe(true);
    } finally {
      await db.query(`ALTER TABLE tasks DROP COLUMN int_spec_extra`);
    }
  });
});

function sortNewest(list: Task[]): Task[] {
  return [...list].sort(
    (a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (b.id < a.id ? -1 : 1),
  );
}
