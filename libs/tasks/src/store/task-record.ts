import type { DataSource, EntityManager } from 'typeorm';
import { currentTraceparent, logTransitions } from '@kiln/common';
import { rowsOf } from '@kiln/database';
import type { Task } from '../task.entity';

/**
 * What the tasks of one insert share with a code: the revision they run and the code's default
 * priority. Sent once per insert and indexed by each row's `k`.
 */
export interface NewTaskCode {
  id: string;
  projectId: string;
  revisionId: string;
  name: string;
  rev: number;
  defaultPriority: number;
}

/**
 * One new task as {@link insertTasks} reads it: short keys, and a key left out where the task
 * holds the usual value (no delay, cluster `default`, no label, no webhook, the code's priority,
 * the insert's first code, not a retry, not fired by a schedule), so a batch of ordinary tasks
 * costs little to encode and to parse.
 */
export interface NewTaskRow {
  /** id */
  i: string;
  /** payload */
  p: string;
  /** timeout, seconds */
  t: number;
  /** priority; the code's default when left out */
  r?: number;
  /** delay, seconds */
  d?: number;
  /** cluster */
  c?: string;
  /** label */
  l?: string;
  /** webhook URL */
  w?: string;
  /** index of the task's code in the insert's codes */
  k?: number;
  /** retry count, original task id: an automatic or manual retry */
  n?: number;
  o?: string;
  /** schedule id and the instant it fired for (ISO) */
  s?: string;
  f?: string;
  /** traceparent, when not the batch's (a retry keeps its original's) */
  x?: string;
}

/**
 * A batch of new tasks, all created at `now`. With `stampDue` (the API's creates, enqueued right
 * after) the due ones are stamped `enqueued_at` by the insert; without it (schedule fires and
 * retries, written inside a larger transaction) they are stamped when enqueued, so a lost enqueue
 * leaves them unstamped for the reconciler to find, however long the outage.
 */
export interface NewTasks {
  now: Date;
  rows: NewTaskRow[];
  codes: NewTaskCode[];
  stampDue?: boolean;
  /** The tasks' `traceparent`; by default the span active at the insert (none untraced). */
  traceparent?: string;
  /** Whether each inserted task gets its `→ queued` log line here (default); false: the caller logs. */
  log?: boolean;
}

/**
 * The one statement that writes new tasks, for API creates, schedule fires and retries alike.
 * `$1` the batch's time, `$2` the tasks (`NewTaskRow[]` as JSON), `$3` their codes
 * (`NewTaskCode[]` as JSON), `$4` whether due tasks are stamped `enqueued_at` in the insert itself
 * (TaskDelivery.enqueueDue says why), by the database's clock as every stamp, `$5` the batch's
 * `traceparent` (a row's own `x` wins); the other columns
 * take the defaults of a new task. A task
 * that exists already (a schedule's instant fired twice: unique per schedule and instant) is
 * skipped.
 */
const INSERT_TASKS_SQL = `
  INSERT INTO tasks (id, project_id, code_id, code_revision_id, code_name, code_rev, status,
                     priority, payload, timeout, delay, cluster, label, webhook,
                     run_at, enqueued_at, created_at, updated_at,
                     retry_count, original_task_id, schedule_id, scheduled_for, traceparent)
  SELECT t.i, c.v->>'projectId', c.v->>'id', c.v->>'revisionId', c.v->>'name', (c.v->>'rev')::int,
         'queued', coalesce(t.r, (c.v->>'defaultPriority')::smallint), t.p, t.t, coalesce(t.d, 0),
         coalesce(t.c, 'default'), coalesce(t.l, ''), t.w,
         $1::timestamptz + coalesce(t.d, 0) * interval '1 second',
         CASE WHEN $4 AND coalesce(t.d, 0) = 0 THEN now() END,
         $1, $1,
         coalesce(t.n, 0), t.o, t.s, t.f, coalesce(t.x, $5)
    FROM json_to_recordset($2) AS t(i text, p text, t int, r smallint, d int, c text, l text,
                                    w text, k int, n int, o text, s text, f timestamptz, x text)
    JOIN json_array_elements($3) WITH ORDINALITY AS c(v, n)
      ON c.n = coalesce(t.k, 0) + 1
  ON CONFLICT DO NOTHING
  RETURNING id, project_id, code_name`;

/**
 * Inserts a batch of new tasks in one statement (atomic without a transaction's extra round
 * trips), inside the caller's transaction when given its `manager`. Returns the ids inserted.
 */
export async function insertTasks(
  db: DataSource | EntityManager,
  { now, rows, codes, stampDue = false, traceparent = currentTraceparent(), log = true }: NewTasks,
): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const inserted = rowsOf<{ id: string; project_id: string; code_name: string }>(
    await db.query(INSERT_TASKS_SQL, [
      now.toISOString(),
      JSON.stringify(rows),
      JSON.stringify(codes),
      stampDue,
      traceparent ?? null,
    ]),
  );
  if (log) {
    logTransitions(
      inserted.map((row) => ({
        task_id: row.id,
        project_id: row.project_id,
        code: row.code_name,
        attempt: 0,
        from: null,
        to: 'queued',
      })),
    );
  }
  return new Set(inserted.map((row) => row.id));
}

/**
 * Whole tasks (a schedule's fires, retries) as one batch: their codes, one per code revision,
 * sent once. `now` is the time of the batch: each task is created then and due `delay` after.
 */
export function newTasksOf(tasks: Task[], now: Date): NewTasks {
  const codes: NewTaskCode[] = [];
  const codeIndex = new Map<string, number>();
  const rows = tasks.map((task): NewTaskRow => {
    let k = codeIndex.get(task.codeRevisionId);
    if (k === undefined) {
      k = codes.length;
      codeIndex.set(task.codeRevisionId, k);
      codes.push({
        id: task.codeId,
        projectId: task.projectId,
        revisionId: task.codeRevisionId,
        name: task.codeName,
        rev: task.codeRev,
        defaultPriority: task.priority,
      });
    }
    const row: NewTaskRow = { i: task.id, p: task.payload, t: task.timeout, r: task.priority };
    if (task.delay !== 0) row.d = task.delay;
    if (task.cluster !== 'default') row.c = task.cluster;
    if (task.label !== '') row.l = task.label;
    if (task.webhook) row.w = task.webhook;
    if (k !== 0) row.k = k;
    if (task.retryCount) row.n = task.retryCount;
    if (task.originalTaskId) row.o = task.originalTaskId;
    if (task.scheduleId) row.s = task.scheduleId;
    if (task.scheduledFor) row.f = task.scheduledFor.toISOString();
    if (task.traceparent) row.x = task.traceparent;
    return row;
  });
  return { now, rows, codes };
}

/** Inserts `retry` and links `original` to it (IronWorker's `retry_task_id`), in `manager`'s transaction. */
export async function insertRetry(
  manager: EntityManager,
  original: Task,
  retry: Task,
  options: { log?: boolean } = {},
): Promise<void> {
  await insertTasks(manager, { ...newTasksOf([retry], retry.createdAt), ...options });
  await manager.query(`UPDATE tasks SET retry_task_id = $2 WHERE id = $1`, [original.id, retry.id]);
}
