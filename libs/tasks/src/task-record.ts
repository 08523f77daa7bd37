import type { DataSource, EntityManager } from 'typeorm';
import { rowsOf } from '@kiln/database';
import type { Task } from './task.entity';

/**
 * A task as a row of the `tasks` table, for `INSERT … SELECT FROM json_populate_recordset`: one
 * statement inserts a whole batch, cheaper than TypeORM's insert builder on the hot path. Every
 * NOT NULL column is given (the record type has no defaults).
 */
export function taskRecord(task: Task): Record<string, unknown> {
  return {
    id: task.id,
    project_id: task.projectId,
    code_id: task.codeId,
    code_revision_id: task.codeRevisionId,
    code_name: task.codeName,
    code_rev: task.codeRev,
    status: task.status,
    priority: task.priority,
    payload: task.payload,
    timeout: task.timeout,
    delay: task.delay,
    cluster: task.cluster,
    label: task.label,
    attempt: 0,
    run_at: task.runAt,
    enqueued_at: task.enqueuedAt ?? null,
    created_at: task.createdAt,
    updated_at: task.updatedAt,
    percent: 0,
    msg: '',
    log_size: 0,
    retry_count: task.retryCount ?? 0,
    original_task_id: task.originalTaskId ?? null,
    schedule_id: task.scheduleId ?? null,
    scheduled_for: task.scheduledFor ?? null,
    webhook: task.webhook ?? null,
  };
}

const INSERT_TASKS_SQL = `INSERT INTO tasks SELECT * FROM json_populate_recordset(null::tasks, $1)
  ON CONFLICT DO NOTHING RETURNING id`;

/**
 * Inserts whole tasks — schedule fires, automatic and manual retries — in one statement, inside
 * the caller's transaction. A task that exists already (a schedule's instant fired twice: unique
 * per schedule and instant) is skipped. Returns the ids inserted.
 */
export async function insertTasks(manager: EntityManager, tasks: Task[]): Promise<Set<string>> {
  if (tasks.length === 0) return new Set();
  const rows = rowsOf<{ id: string }>(
    await manager.query(INSERT_TASKS_SQL, [JSON.stringify(tasks.map(taskRecord))]),
  );
  return new Set(rows.map((row) => row.id));
}

/** What a request's tasks share with their code, by index in `INSERT_NEW_TASKS_SQL`'s `$4`. */
export interface NewTaskCode {
  id: string;
  latestRevisionId: string;
  name: string;
  rev: number;
  defaultPriority: number;
}

/**
 * One new task as `INSERT_NEW_TASKS_SQL` reads it: short keys, and a key left out where the task
 * holds the usual value (no delay, cluster `default`, no label, no webhook, the code's priority,
 * the request's first code), so a batch of ordinary tasks costs little to encode and to parse.
 */
export interface NewTaskRow {
  i: string;
  p: string;
  t: number;
  r?: number;
  d?: number;
  c?: string;
  l?: string;
  w?: string;
  k?: number;
}

/**
 * Inserts a request's new tasks in one statement (atomic without a transaction's extra round
 * trips). `$1` project id, `$2` the request's time, `$3` the tasks (`NewTaskRow[]` as JSON), `$4`
 * their codes (`NewTaskCode[]` as JSON). Due tasks are stamped `enqueued_at` in the insert itself
 * (TaskDelivery.enqueueDue says why); the other columns take the defaults of a new task.
 */
const INSERT_NEW_TASKS_SQL = `
  INSERT INTO tasks (id, project_id, code_id, code_revision_id, code_name, code_rev, status,
                     priority, payload, timeout, delay, cluster, label, webhook,
                     run_at, enqueued_at, created_at, updated_at)
  SELECT t.i, $1, c.v->>'id', c.v->>'latestRevisionId', c.v->>'name', (c.v->>'rev')::int,
         'queued', coalesce(t.r, (c.v->>'defaultPriority')::smallint), t.p, t.t, coalesce(t.d, 0),
         coalesce(t.c, 'default'), coalesce(t.l, ''), t.w,
         $2::timestamptz + coalesce(t.d, 0) * interval '1 second',
         CASE WHEN coalesce(t.d, 0) = 0 THEN $2::timestamptz END,
         $2, $2
    FROM json_to_recordset($3) AS t(i text, p text, t int, r smallint, d int, c text, l text,
                                    w text, k int)
    JOIN json_array_elements($4) WITH ORDINALITY AS c(v, n)
      ON c.n = coalesce(t.k, 0) + 1`;

/**
 * Inserts a request's new tasks in one statement (the API's hot path): `rows` in their short
 * form, what they share (`codes`, indexed by `k`) sent once, all created at `now`.
 */
export async function insertNewTasks(
  db: DataSource,
  projectId: string,
  now: Date,
  rows: NewTaskRow[],
  codes: NewTaskCode[],
): Promise<void> {
  await db.query(INSERT_NEW_TASKS_SQL, [
    projectId,
    now.toISOString(),
    JSON.stringify(rows),
    JSON.stringify(codes),
  ]);
}
