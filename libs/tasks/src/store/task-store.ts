import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { logTransition } from '@kiln/common';
import { hydrator, poolQuery, preparedQuery, rowsOf, selectColumns } from '@kiln/database';
import { Task } from '../task.entity';
import { TASK_STATUSES, TaskStatus } from '../task-status';
import { sqlFrom } from '../task-transitions';
import { NewTasks, insertRetry, insertTasks } from './task-record';

const CANCEL_FROM = sqlFrom('cancelled', 'api', 't.status');

export interface TaskListQuery {
  statuses: TaskStatus[];
  codeName?: string;
  label?: string;
  cluster?: string;
  fromTime?: Date;
  toTime?: Date;
  page: number;
  perPage: number;
}

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

/** Which tasks a cancel is for: one task, or every task of a code. */
export type CancelTarget = { taskId: string } | { codeId: string };

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

  /** Inserts a retry of `original` and links the two, in one transaction. */
  async insertRetry(original: Task, retry: Task): Promise<void> {
    await this.db.transaction((manager) => insertRetry(manager, original, retry));
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

  /**
   * One page of the project's tasks, newest first. The page's ids are found first, over indexes
   * that hold the filters and the order (`created_at DESC, id DESC`), then its 30 rows are read.
   * With a status flag, or a filter on code, label or cluster, the ids come from one branch per
   * status (each a walk down `(project_id, [code_name | label | cluster,] status, created_at
   * DESC, id DESC)` that stops after `offset + per_page` entries), merged: no sort of all the
   * matching tasks, however many there are (docs/benchmarks.md, "backlog").
   */
  async list(projectId: string, query: TaskListQuery): Promise<Task[]> {
    const params: unknown[] = [projectId];
    const param = (value: unknown) => `$${params.push(value)}`;
    const where = ['l.project_id = $1'];
    const filter = (column: string, operator: string, value: unknown) => {
      if (value !== undefined) where.push(`l.${column} ${operator} ${param(value)}`);
    };
    filter('code_name', '=', query.codeName);
    filter('label', '=', query.label);
    filter('cluster', '=', query.cluster);
    filter('created_at', '>=', query.fromTime);
    filter('created_at', '<=', query.toTime);
    const order = 'ORDER BY created_at DESC, id DESC';
    const limit = param(query.perPage);
    const offset = param(query.page * query.perPage);
    const narrowed =
      query.codeName !== undefined || query.label !== undefined || query.cluster !== undefined;
    const statuses =
      query.statuses.length > 0 ? query.statuses : narrowed ? [...TASK_STATUSES] : [];
    let page: string;
    if (statuses.length === 0) {
      page = `SELECT l.id, l.created_at FROM tasks l WHERE ${where.join(' AND ')}
               ${order} LIMIT ${limit} OFFSET ${offset}`;
    } else {
      const reach = param(query.page * query.perPage + query.perPage);
      const branches = statuses.map(
        (status) => `(SELECT l.id, l.created_at FROM tasks l
                       WHERE ${where.join(' AND ')} AND l.status = ${param(status)}
                       ${order} LIMIT ${reach})`,
      );
      page = `SELECT b.id, b.created_at FROM (${branches.join(' UNION ALL ')}) b
               ${order} LIMIT ${limit} OFFSET ${offset}`;
    }
    const { rows } = await poolQuery<Record<string, unknown>>(
      this.db,
      `SELECT ${this.columns.t} FROM tasks t JOIN (${page}) page ON page.id = t.id
        ORDER BY t.created_at DESC, t.id DESC`,
      params,
    );
    return rows.map((row) => this.hydrate(row));
  }

  /**
   * Cancels the project's tasks of `target` that have not ended; returns each cancelled task with
   * the status it had.
   */
  async cancel(projectId: string, target: CancelTarget): Promise<CancelledTask[]> {
    const [column, value] = 'taskId' in target ? ['id', target.taskId] : ['code_id', target.codeId];
    const cancelled = rowsOf<CancelledTask>(
      await this.db.query(
        `UPDATE tasks t
            SET status = 'cancelled', msg = 'Cancelled', end_time = now(), updated_at = now(),
                heartbeat_at = NULL
           FROM (SELECT id, status FROM tasks t
                  WHERE t.${column} = $1 AND t.project_id = $2 AND ${CANCEL_FROM}
                  FOR UPDATE) was
          WHERE t.id = was.id
          RETURNING t.id, was.status AS was, t.project_id AS "projectId",
                    t.code_name AS "codeName", t.cluster, t.priority, t.attempt,
                    t.worker_id AS "workerId"`,
        [value, projectId],
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
