import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { isId, logTransition } from '@kiln/common';
import { hydrator, poolQuery, preparedQuery, rowsOf, selectColumns } from '@kiln/database';
import { Task } from '../task.entity';
import { FINAL_STATUSES, TASK_STATUSES, TaskStatus, isFinal } from '../task-status';
import { sqlFrom } from '../task-transitions';
import { NewTasks, insertRetry, insertTasks } from './task-record';

const CANCEL_FROM = sqlFrom('cancelled', 'api', 't.status');

/** Which of a project's tasks: the list's filters (none: every task). */
export interface TaskFilter {
  /** Any of these (OR); none: any status. */
  statuses: TaskStatus[];
  codeName?: string;
  label?: string;
  cluster?: string;
  fromTime?: Date;
  toTime?: Date;
}

/** A place in the list's order (`created_at DESC, id DESC`): the last task of a page. */
export interface TaskCursor {
  /** `created_at` in epoch microseconds (as Postgres keeps it: a JS Date would round it). */
  micros: string;
  id: string;
}

export interface TaskListQuery extends TaskFilter {
  page: number;
  perPage: number;
  /** Cursor paging: `first` for its first page, else after this place. */
  cursor?: TaskCursor | 'first';
  /** A search: a task id, or text within the payloads (see {@link TaskStore.list}). */
  q?: string;
}

/** One page of a list; `next` only when paged by cursor (or searched): null at the end. */
export interface TaskPage {
  tasks: Task[];
  next?: TaskCursor | null;
}

/**
 * The tasks a search reads per page at most, newest first among those matching the filters
 * (with their payloads, from the heap): a search costs one page of these however big the project,
 * and a page that found fewer matches than asked ends at the last task it read, for the next page
 * to go on from there.
 */
export const SEARCH_SCAN = 2000;

/** A task's place in the list's order, as its rows carry it (`kiln_cursor`). */
const CURSOR_COLUMN = `(extract(epoch FROM t.created_at) * 1000000)::bigint::text AS kiln_cursor`;

/** A task a cancel ended: the status it had, and what labels its metrics. */
export interface CancelledTask {
  id: string;
  was: TaskStatus;
  projectId: string;
  codeName: string;
  cluster: string;
  priority: number;
  attempt: number;
  workerId: string | null;
}

/**
 * Which tasks a cancel is for: one task, every task of a code, tasks by id, or (a bulk cancel)
 * the first `limit` matching `filter` queued at or before `before`, oldest first.
 */
export type CancelTarget =
  | { taskId: string }
  | { codeId: string }
  | { taskIds: string[] }
  | { filter: TaskFilter; before: Date; limit: number };

type Param = (value: unknown) => string;

/** The SQL conditions of `filter` but its statuses, on the tasks aliased `alias`. */
function filterConditions(filter: TaskFilter, param: Param, alias: string): string[] {
  const where: string[] = [];
  const add = (column: string, operator: string, value: unknown) => {
    if (value !== undefined) where.push(`${alias}.${column} ${operator} ${param(value)}`);
  };
  add('code_name', '=', filter.codeName);
  add('label', '=', filter.label);
  add('cluster', '=', filter.cluster);
  add('created_at', '>=', filter.fromTime);
  add('created_at', '<=', filter.toTime);
  return where;
}

/** A list row's place in the list's order. */
function cursorOf(row: Record<string, unknown>): TaskCursor {
  return { micros: row.kiln_cursor as string, id: row.id as string };
}

/**
 * The SQL of the API's task routes: reads, inserts, cancels and progress. Every change of status
 * here is checked against the transition table ({@link sqlFrom}); {@link TaskLifecycle} holds the
 * workers' and the reconciler's.
 */
@Injectable()
export class TaskStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  private hydrateRow?: (row: Record<string, unknown>) => Task;
  private columnLists?: { plain: string; t: string };

  private hydrate(row: Record<string, unknown>): Task {
    this.hydrateRow ??= hydrator(this.db, Task);
    return this.hydrateRow(row);
  }

  /** The task's columns, named (see selectColumns): as they are, and as `t.<column>`. */
  private get columns(): { plain: string; t: string } {
    return (this.columnLists ??= {
      plain: selectColumns(this.db, Task),
      t: selectColumns(this.db, Task, 't'),
    });
  }

  /** Inserts a request's new tasks in one statement (the API's hot path). */
  async insert(tasks: NewTasks): Promise<void> {
    await insertTasks(this.db, tasks);
  }

  /** Inserts retries, each linked to its original, all in one transaction (all or none). */
  async insertRetries(pairs: [original: Task, retry: Task][]): Promise<void> {
    await this.db.transaction(async (manager) => {
      for (const [original, retry] of pairs) await insertRetry(manager, original, retry);
    });
  }

  /** One task of the project (what clients poll): a prepared statement, no query builder. */
  async find(projectId: string, id: string): Promise<Task | null> {
    const { rows } = await preparedQuery(
      this.db,
      'kiln_task_find',
      `SELECT ${this.columns.plain} FROM tasks WHERE id = $1 AND project_id = $2`,
      [id, projectId],
    );
    return rows[0] ? this.hydrate(rows[0]) : null;
  }

  /** The ids among `ids` of the project's tasks (another project's find nothing), by primary key. */
  async idsOf(projectId: string, ids: string[]): Promise<string[]> {
    const { rows } = await poolQuery<{ id: string }>(
      this.db,
      `SELECT id FROM tasks WHERE id = ANY($1::char(24)[]) AND project_id = $2`,
      [ids, projectId],
    );
    return rows.map((row) => row.id);
  }

  /** The tasks of the project among `ids` (another project's ids find nothing). */
  async findMany(projectId: string, ids: string[]): Promise<Task[]> {
    const { rows } = await poolQuery<Record<string, unknown>>(
      this.db,
      `SELECT ${this.columns.t} FROM tasks t WHERE t.id = ANY($1::char(24)[]) AND t.project_id = $2
        ORDER BY t.created_at, t.id`,
      [ids, projectId],
    );
    return rows.map((row) => this.hydrate(row));
  }

  /**
   * The retry chain through `task`, oldest first: back along `original_task_id` and forward along
   * `retry_task_id` (a task retried twice names its latest retry), at most `limit` steps each way,
   * by primary key; within the project only.
   */
  async chain(projectId: string, task: Task, limit: number): Promise<Task[]> {
    const { rows } = await poolQuery<Record<string, unknown>>(
      this.db,
      `WITH RECURSIVE back AS (
         SELECT $2::char(24) AS id, 0 AS steps
         UNION ALL
         SELECT t.original_task_id, back.steps + 1 FROM tasks t JOIN back ON t.id = back.id
          WHERE t.project_id = $1 AND t.original_task_id IS NOT NULL AND back.steps < $3
       ), forth AS (
         SELECT $2::char(24) AS id, 0 AS steps
         UNION ALL
         SELECT t.retry_task_id, forth.steps + 1 FROM tasks t JOIN forth ON t.id = forth.id
          WHERE t.project_id = $1 AND t.retry_task_id IS NOT NULL AND forth.steps < $3
       )
       SELECT ${this.columns.t} FROM tasks t
        WHERE t.project_id = $1 AND t.id IN (SELECT id FROM back UNION SELECT id FROM forth)
        ORDER BY t.created_at, t.id`,
      [projectId, task.id, limit],
    );
    return rows.map((row) => this.hydrate(row));
  }

  /**
   * A bulk retry's tasks: the first `limit` (oldest first) matching `filter` that have ended,
   * have not been retried, and were queued at or before `before` (so that the retries it makes,
   * and tasks queued meanwhile, are not among them).
   */
  async findRetryable(
    projectId: string,
    filter: TaskFilter,
    before: Date,
    limit: number,
  ): Promise<Task[]> {
    const params: unknown[] = [projectId];
    const param = (value: unknown) => `$${params.push(value)}`;
    const statuses = filter.statuses.length > 0 ? filter.statuses.filter(isFinal) : FINAL_STATUSES;
    const where = [
      't.project_id = $1',
      ...filterConditions(filter, param, 't'),
      `t.status = ANY(${param(statuses)}::text[])`,
      't.retry_task_id IS NULL',
      `t.created_at <= ${param(before)}`,
    ];
    const { rows } = await poolQuery<Record<string, unknown>>(
      this.db,
      `SELECT ${this.columns.t} FROM tasks t WHERE ${where.join(' AND ')}
        ORDER BY t.created_at, t.id LIMIT ${param(limit)}`,
      params,
    );
    return rows.map((row) => this.hydrate(row));
  }

  /**
   * One page of the project's tasks, newest first. The page's ids are found first, over indexes
   * that hold the filters and the order (`created_at DESC, id DESC`), then its rows are read.
   * With a status flag, or a filter on code, label or cluster, the ids come from one branch per
   * status (each a walk down `(project_id, [code_name | label | cluster,] status, created_at
   * DESC, id DESC)` that stops after `offset + per_page` entries), merged: no sort of all the
   * matching tasks, however many there are (docs/benchmarks.md, "backlog"). A cursor is a
   * keyset condition on the same order, so a page deep in the list costs what the first does.
   *
   * `q` that is a task id finds that task (if it matches the filters); any other `q` is looked
   * for in the payloads of the next {@link SEARCH_SCAN} tasks matching the filters.
   */
  async list(projectId: string, query: TaskListQuery): Promise<TaskPage> {
    if (query.q !== undefined && !isId(query.q)) return this.search(projectId, query, query.q);
    const { sql, params } = this.pageIds(projectId, query, query.perPage);
    const { rows } = await poolQuery<Record<string, unknown>>(
      this.db,
      `SELECT ${this.columns.t}, ${CURSOR_COLUMN}
         FROM tasks t JOIN (${sql}) page ON page.id = t.id
        ORDER BY t.created_at DESC, t.id DESC`,
      params,
    );
    const tasks = rows.map((row) => this.hydrate(row));
    if (query.cursor === undefined && query.q === undefined) return { tasks };
    const full = query.q === undefined && rows.length === query.perPage;
    return { tasks, next: full ? cursorOf(rows[rows.length - 1]) : null };
  }

  /** A payload search: the matches among the next SEARCH_SCAN tasks of the list. */
  private async search(projectId: string, query: TaskListQuery, q: string): Promise<TaskPage> {
    const { sql, params } = this.pageIds(projectId, query, SEARCH_SCAN);
    const { rows: scanned } = await poolQuery<Record<string, unknown>>(
      this.db,
      `SELECT t.id, ${CURSOR_COLUMN}, strpos(lower(t.payload), lower($${params.length + 1})) > 0 AS hit
         FROM tasks t JOIN (${sql}) page ON page.id = t.id
        ORDER BY t.created_at DESC, t.id DESC`,
      [...params, q],
    );
    const hits = scanned.filter((row) => row.hit === true).slice(0, query.perPage);
    const last =
      hits.length === query.perPage
        ? hits[hits.length - 1]
        : scanned.length === SEARCH_SCAN
          ? scanned[scanned.length - 1]
          : undefined;
    const { rows } = await poolQuery<Record<string, unknown>>(
      this.db,
      `SELECT ${this.columns.t} FROM tasks t WHERE t.id = ANY($1::char(24)[]) AND t.project_id = $2
        ORDER BY t.created_at DESC, t.id DESC`,
      [hits.map((row) => row.id), projectId],
    );
    return { tasks: rows.map((row) => this.hydrate(row)), next: last ? cursorOf(last) : null };
  }

  /**
   * The ids (and `created_at`) of `limit` tasks of the list from its offset or its cursor, as a
   * subquery with its parameters (see {@link list}).
   */
  private pageIds(
    projectId: string,
    query: TaskListQuery,
    limit: number,
  ): { sql: string; params: unknown[] } {
    const params: unknown[] = [projectId];
    const param = (value: unknown) => `$${params.push(value)}`;
    const where = ['l.project_id = $1', ...filterConditions(query, param, 'l')];
    if (query.cursor !== undefined && query.cursor !== 'first') {
      where.push(
        `(l.created_at, l.id) < (timestamptz 'epoch' + ${param(query.cursor.micros)}::bigint * interval '1 microsecond', ${param(query.cursor.id)}::char(24))`,
      );
    }
    if (query.q !== undefined && isId(query.q)) where.push(`l.id = ${param(query.q)}`);
    const order = 'ORDER BY created_at DESC, id DESC';
    const skip = query.cursor === undefined && query.q === undefined ? query.page * limit : 0;
    const narrowed =
      query.codeName !== undefined || query.label !== undefined || query.cluster !== undefined;
    const statuses =
      query.statuses.length > 0 ? query.statuses : narrowed ? [...TASK_STATUSES] : [];
    if (statuses.length === 0) {
      return {
        sql: `SELECT l.id, l.created_at FROM tasks l WHERE ${where.join(' AND ')}
               ${order} LIMIT ${param(limit)} OFFSET ${param(skip)}`,
        params,
      };
    }
    const reach = param(skip + limit);
    const branches = statuses.map(
      (status) => `(SELECT l.id, l.created_at FROM tasks l
                     WHERE ${where.join(' AND ')} AND l.status = ${param(status)}
                     ${order} LIMIT ${reach})`,
    );
    return {
      sql: `SELECT b.id, b.created_at FROM (${branches.join(' UNION ALL ')}) b
             ${order} LIMIT ${param(limit)} OFFSET ${param(skip)}`,
      params,
    };
  }

  /**
   * Cancels the project's tasks of `target` that have not ended; returns each cancelled task with
   * the status it had.
   */
  async cancel(projectId: string, target: CancelTarget): Promise<CancelledTask[]> {
    const params: unknown[] = [projectId];
    const param = (value: unknown) => `$${params.push(value)}`;
    let which: string;
    let first = '';
    if ('taskId' in target) which = `t.id = ${param(target.taskId)}`;
    else if ('codeId' in target) which = `t.code_id = ${param(target.codeId)}`;
    else if ('taskIds' in target) which = `t.id = ANY(${param(target.taskIds)}::char(24)[])`;
    else {
      which = [
        ...filterConditions(target.filter, param, 't'),
        ...(target.filter.statuses.length > 0
          ? [`t.status = ANY(${param(target.filter.statuses)}::text[])`]
          : []),
        `t.created_at <= ${param(target.before)}`,
      ].join(' AND ');
      first = `ORDER BY t.created_at, t.id LIMIT ${param(target.limit)}`;
    }
    const cancelled = rowsOf<CancelledTask>(
      await this.db.query(
        `UPDATE tasks t
            SET status = 'cancelled', msg = 'Cancelled', end_time = now(), updated_at = now(),
                heartbeat_at = NULL
           FROM (SELECT id, status FROM tasks t
                  WHERE t.project_id = $1 AND ${which} AND ${CANCEL_FROM}
                  ${first} FOR UPDATE) was
          WHERE t.id = was.id
          RETURNING t.id, was.status AS was, t.project_id AS "projectId",
                    t.code_name AS "codeName", t.cluster, t.priority, t.attempt,
                    t.worker_id AS "workerId"`,
        params,
      ),
    );
    // One line per task cancelled, from the rows the statement returned.
    for (const row of cancelled) {
      logTransition({
        task_id: row.id,
        project_id: row.projectId,
        code: row.codeName,
        attempt: row.attempt,
        from: row.was,
        to: 'cancelled',
        worker: row.workerId,
      });
    }
    return cancelled;
  }

  /** Sets `percent` and `msg` (where given) of a task that has not ended. */
  async setProgress(
    projectId: string,
    id: string,
    percent: number | null,
    msg: string | null,
  ): Promise<void> {
    await this.db.query(
      `UPDATE tasks SET percent = coalesce($3, percent), msg = coalesce($4, msg), updated_at = now()
        WHERE id = $1 AND project_id = $2 AND status IN ('queued', 'preparing', 'running')`,
      [id, projectId, percent, msg],
    );
  }

  /**
   * The project's tasks in status `queued` (delayed ones too): an index-only count over
   * `tasks_project_status_created_idx` (about 210 ms for a million, 0.1 ms for ten).
   */
  async countQueued(projectId: string): Promise<number> {
    const [row] = rowsOf<{ n: number }>(
      await this.db.query(
        `SELECT count(*)::int AS n FROM tasks WHERE project_id = $1 AND status = 'queued'`,
        [projectId],
      ),
    );
    return row.n;
  }

  /** Task counts by status for a code, over tasks created in [from, to]; absent statuses left out. */
  async countByStatus(
    codeId: string,
    from: Date,
    to: Date,
  ): Promise<{ status: TaskStatus; n: number }[]> {
    return this.db.query(
      `SELECT status, count(*)::int AS n FROM tasks
        WHERE code_id = $1 AND created_at >= $2 AND created_at <= $3
        GROUP BY status`,
      [codeId, from, to],
    );
  }
}
