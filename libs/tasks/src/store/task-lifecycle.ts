import { Inject, Injectable } from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { Batcher, logTransition } from '@kiln/common';
import { preparedQuery, rowsOf } from '@kiln/database';
import { Task } from '../task.entity';
import { FinalStatus, TaskStatus } from '../task-status';
import { mayChange, sqlFrom } from '../task-transitions';
import { retryOf } from '../task-retry';
import { insertRetry } from './task-record';

/** The WHERE clauses of the status changes, from the transition table. */
const TAKE_FROM = sqlFrom('preparing', 'worker', 't.status');
const RUNNING_FROM = sqlFrom('running', 'worker', 't.status');
/** Every final status a worker records leaves the same statuses (the spec of the table checks it). */
const FINISH_FROM = sqlFrom('complete', 'worker', 't.status');
/** What a worker holds: the statuses it may release. */
const HELD = sqlFrom('queued', 'worker');
const HELD_T = sqlFrom('queued', 'worker', 't.status');
const REQUEUE_FROM = sqlFrom('queued', 'reconciler');
const FAIL_LAPSED_FROM = sqlFrom('error', 'reconciler');
/** A task's heartbeat is older than the lapse ($1 s), counted from Postgres's start at the earliest. */
const LAPSED = `heartbeat_at < now() - make_interval(secs => $1)
            AND pg_postmaster_start_time() < now() - make_interval(secs => $1)`;

export interface TaskOutcome {
  status: FinalStatus;
  msg: string;
  exitCode: number | null;
  durationMs: number | null;
  logSize: number;
}

/**
 * Every status change of a task is a compare-and-set in Postgres on (id, status, attempt): a late,
 * duplicate or stale message finds zero rows and changes nothing. Times come from the database
 * clock, so workers with skewed clocks still agree.
 */
@Injectable()
export class TaskLifecycle {
  /** The operator's limit on a project's running tasks, for projects without their own; null: none. */
  private readonly projectMaxRunning: number | null;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @Inject(KILN_CONFIG) config: KilnConfig,
  ) {
    this.projectMaxRunning = config.tasks.projectMaxRunning || null;
  }

  /**
   * queued → preparing for this worker, counting an attempt; null when the task is gone,
   * cancelled or already taken, or must wait: its code is paused, or already runs
   * `max_concurrency` tasks across every worker, or its project already runs `max_running` tasks
   * in the cluster (each counted under an advisory lock, so two workers cannot both take the
   * last slot). A waiting task is parked (`enqueued_at` cleared):
   * the reconciler enqueues it again once its code is resumed, or a second later for a slot.
   * A re-run starts with an empty log.
   *
   * The common case, a code that is neither paused nor limited, of a project without a limit, is
   * one statement, shared by the takes a worker makes meanwhile (group commit); the rest goes
   * through {@link takeChecked}.
   */
  async take(taskId: string, workerId: string): Promise<Task | null> {
    let batcher = this.takes.get(workerId);
    if (!batcher) {
      batcher = new Batcher((ids: string[]) => this.takeMany(ids, workerId));
      this.takes.set(workerId, batcher);
    }
    return batcher.add(taskId);
  }

  /** Takes made while one is being written go together (group commit), per worker. */
  private readonly takes = new Map<string, Batcher<string, Task | null>>();

  /**
   * One statement takes every task of `ids` that is in the common case; each other one (gone,
   * taken, or paused or limited) goes through {@link takeChecked}. One id alone keeps the
   * prepared statement.
   */
  private async takeMany(ids: string[], workerId: string): Promise<(Task | null)[]> {
    const rows =
      ids.length === 1
        ? (
            await preparedQuery<Record<string, unknown>>(
              this.db,
              'kiln-task-take',
              takeSql(false),
              [ids[0], workerId, this.projectMaxRunning],
            )
          ).rows
        : // Unnamed: planned for these values each time, by the primary key.
          await this.db.query<Record<string, unknown>[]>(takeSql(true), [
            [...new Set(ids)].sort(),
            workerId,
            this.projectMaxRunning,
          ]);
    const taken = new Map(rows.map((row) => [String(row.id), this.taskOf(row)]));
    return Promise.all(
      ids.map(async (id) => {
        const found = taken.get(id);
        taken.delete(id); // an id given twice is taken once
        const task = found ?? (await this.takeChecked(id, workerId));
        if (task) logTaken(task, 'queued', 'preparing');
        return task;
      }),
    );
  }

  private async takeChecked(taskId: string, workerId: string): Promise<Task | null> {
    return this.db.transaction(async (manager) => {
      const [row] = await manager.query<TakeRow[]>(
        `SELECT t.status, t.code_id, t.project_id, t.cluster, c.paused, c.max_concurrency,
                coalesce(p.max_running, $2) AS max_running
           FROM tasks t JOIN codes c ON c.id = t.code_id JOIN projects p ON p.id = t.project_id
          WHERE t.id = $1
          FOR UPDATE OF t`,
        [taskId, this.projectMaxRunning],
      );
      if (!row || !mayChange(row.status, 'preparing', 'worker')) return null;
      if (row.paused) {
        await manager.query(`UPDATE tasks SET enqueued_at = NULL WHERE id = $1`, [taskId]);
        return null;
      }
      // The project's limit first, then the code's: the same order in every worker, so the two
      // advisory locks cannot deadlock.
      const full =
        (row.max_running !== null &&
          (await this.liveCount(manager, `project_id = $1 AND cluster = $2`, [
            row.project_id,
            row.cluster,
          ])) >= row.max_running) ||
        (row.max_concurrency !== null &&
          (await this.liveCount(manager, `code_id = $1`, [row.code_id])) >= row.max_concurrency);
      if (full) {
        await manager.query(
          `UPDATE tasks SET enqueued_at = NULL, run_at = greatest(run_at, now() + interval '1 second')
            WHERE id = $1`,
          [taskId],
        );
        return null;
      }
      await manager.query(
        `UPDATE tasks
            SET status = 'preparing', attempt = attempt + 1, worker_id = $2,
                heartbeat_at = now(), updated_at = now()
          WHERE id = $1`,
        [taskId, workerId],
      );
      await manager.query(`DELETE FROM task_log_chunks WHERE task_id = $1`, [taskId]);
      return manager.findOneBy(Task, { id: taskId });
    });
  }

  /**
   * The tasks taken and not ended (`preparing`, `running`) that match `where`, counted under an
   * advisory lock on what `params` name, held to the end of the transaction: two workers cannot
   * both take the last slot.
   */
  private async liveCount(
    manager: EntityManager,
    where: string,
    params: string[],
  ): Promise<number> {
    await manager.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [
      params.join('/'),
    ]);
    const [{ live }] = await manager.query<{ live: number }[]>(
      `SELECT count(*)::int AS live FROM tasks
        WHERE ${where} AND status IN ('preparing', 'running')`,
      params,
    );
    return live;
  }

  /** A `tasks` row as TypeORM would load it (column names and transformers from the entity). */
  private taskOf(row: Record<string, unknown>): Task {
    const task = new Task();
    for (const column of this.db.getMetadata(Task).columns) {
      const raw = row[column.databaseName];
      const transformer = column.transformer;
      const value: unknown =
        transformer && !Array.isArray(transformer) && raw !== null ? transformer.from(raw) : raw;
      (task as unknown as Record<string, unknown>)[column.propertyName] = value;
    }
    return task;
  }

  /**
   * preparing → running, stamping `start_time`. Calls made while one is being written go in one
   * statement together (group commit, {@link Batcher}): a worker of many slots running short
   * tasks marks them with one statement, not one each.
   */
  async markRunning(taskId: string, attempt: number): Promise<boolean> {
    return this.runnings.add({ taskId, attempt });
  }

  private readonly runnings = new Batcher<{ taskId: string; attempt: number }, boolean>((items) =>
    this.markRunningMany(items),
  );

  /** One statement for `items`: whether each was marked running. */
  private async markRunningMany(items: { taskId: string; attempt: number }[]): Promise<boolean[]> {
    const ids = items.map((item) => item.taskId);
    const attempts = items.map((item) => item.attempt);
    const rows =
      items.length === 1
        ? (
            await preparedQuery<ChangedRow>(this.db, 'kiln-task-running', runningSql(false), [
              ids[0],
              attempts[0],
            ])
          ).rows
        : // Unnamed: planned for these values each time (a generic plan made on a small table
          // would scan it), by the primary key.
          rowsOf<ChangedRow>(await this.db.query(runningSql(true), [ids, attempts]));
    for (const row of rows) logChanged(row, 'running');
    const marked = new Set(rows.map((row) => `${row.id}.${row.attempt}`));
    return items.map((item) => marked.has(`${item.taskId}.${item.attempt}`));
  }

  /**
   * A running task's progress (`percent`), as a hot container reports it (docs/hot.md): only
   * while this attempt runs, so a late report never touches a task that ended or moved on.
   */
  async setProgress(taskId: string, attempt: number, percent: number): Promise<void> {
    await preparedQuery(
      this.db,
      'kiln-task-progress',
      `UPDATE tasks SET percent = $3, updated_at = now()
        WHERE id = $1 AND attempt = $2 AND status = 'running'`,
      [taskId, attempt, percent],
    );
  }

  /**
   * preparing|running → a final status, once. A failure (`error`, `timeout`, `killed`) of a code
   * with retries left queues a new task in the same transaction, after the code's
   * `retries_delay`, linked both ways (IronWorker's `original_task_id`/`retry_task_id`), and
   * returns it so the caller can enqueue it. A task cancelled while it ran keeps `cancelled` but
   * gets its duration and log size.
   */
  async finish(taskId: string, attempt: number, outcome: TaskOutcome): Promise<FinishResult> {
    if (!RETRYABLE.includes(outcome.status)) {
      // No retry can follow: no transaction needed (one statement, two if it was cancelled).
      const finished = await this.markFinished(null, taskId, attempt, outcome);
      if (!finished) await this.completeCancelled(this.db.manager, taskId, attempt, outcome);
      else logChanged(finished, outcome.status);
      return { finished: finished !== null, retry: null };
    }
    const { finished, retry } = await this.db.transaction(async (manager) => {
      const changed = await this.markFinished(manager, taskId, attempt, outcome);
      if (!changed) {
        await this.completeCancelled(manager, taskId, attempt, outcome);
        return { finished: null, retry: null };
      }
      const task = await manager.findOneByOrFail(Task, { id: taskId });
      const [code] = await manager.query<{ retries: number; retries_delay: number }[]>(
        `SELECT retries, retries_delay FROM codes WHERE id = $1 AND deleted_at IS NULL`,
        [task.codeId],
      );
      if (!code || task.retryCount >= code.retries) return { finished: changed, retry: null };
      const retry = retryOf(task, code.retries_delay);
      await insertRetry(manager, task, retry, { log: false });
      return { finished: changed, retry };
    });
    // Logged once committed: a rolled-back transaction changed nothing.
    if (finished) logChanged(finished, outcome.status);
    if (retry) logTaken(retry, null, 'queued');
    return { finished: finished !== null, retry };
  }

  /**
   * The compare-and-set of `finish`: true when this attempt's task took the final status. Outside
   * a transaction (`manager` null) it runs as a prepared statement.
   */
  private async markFinished(
    manager: EntityManager | null,
    taskId: string,
    attempt: number,
    outcome: TaskOutcome,
  ): Promise<ChangedRow | null> {
    // Not the worker's to record (a cancel is the API's): completeCancelled fills in the rest.
    if (!mayChange('running', outcome.status, 'worker')) return null;
    // `was` (the status before, for the log) is read under the row's lock.
    const sql = `UPDATE tasks t
        SET status = $3, msg = $4, exit_code = $5, duration_ms = $6, log_size = $7,
            end_time = now(), updated_at = now(), heartbeat_at = NULL
       FROM (SELECT id, status FROM tasks WHERE id = $1 AND attempt = $2 FOR UPDATE) was
      WHERE t.id = was.id AND ${FINISH_FROM}
      RETURNING t.id, t.project_id, t.code_name, t.attempt, t.worker_id, was.status AS was`;
    const values = [
      taskId,
      attempt,
      outcome.status,
      outcome.msg,
      outcome.exitCode,
      outcome.durationMs,
      outcome.logSize,
    ];
    if (!manager) {
      return (
        (await preparedQuery<ChangedRow>(this.db, 'kiln-task-finish', sql, values)).rows[0] ?? null
      );
    }
    return rowsOf<ChangedRow>(await manager.query(sql, values))[0] ?? null;
  }

  /** A task cancelled while it ran keeps `cancelled` but gets its duration and log size. */
  private async completeCancelled(
    manager: EntityManager,
    taskId: string,
    attempt: number,
    outcome: TaskOutcome,
  ): Promise<void> {
    await manager.query(
      `UPDATE tasks SET exit_code = $3, duration_ms = $4, log_size = $5
        WHERE id = $1 AND attempt = $2 AND status = 'cancelled' AND duration_ms IS NULL`,
      [taskId, attempt, outcome.exitCode, outcome.durationMs, outcome.logSize],
    );
  }

  /**
   * preparing|running → queued again, for a worker that stops (or restarts) before the task ends:
   * the reconciler enqueues it once more (at-least-once, never lost).
   */
  async release(taskId: string, attempt: number): Promise<boolean> {
    const [row] = rowsOf<ChangedRow>(
      await this.db.query(
        `UPDATE tasks t
            SET status = 'queued', worker_id = NULL, heartbeat_at = NULL, enqueued_at = NULL,
                start_time = NULL, updated_at = now()
           FROM (SELECT id, status, worker_id FROM tasks WHERE id = $1 AND attempt = $2 FOR UPDATE) was
          WHERE t.id = was.id AND ${HELD_T}
          RETURNING t.id, t.project_id, t.code_name, t.attempt, was.worker_id, was.status AS was`,
        [taskId, attempt],
      ),
    );
    if (row) logChanged(row, 'queued');
    return row !== undefined;
  }

  /**
   * Tasks whose worker stopped heartbeating `lapseSeconds` ago (counted from Postgres's own start
   * at the earliest) go back to `queued` while they have been taken fewer than `maxAttempts`
   * times, and end `error` after. The caller (the reconciler) decides when a lapse means anything.
   */
  async recoverLapsed(
    lapseSeconds: number,
    maxAttempts: number,
  ): Promise<{ requeued: number; failed: LapsedTask[] }> {
    // One line per task the statements changed, from the rows they return.
    const requeued = rowsOf<ChangedRow>(
      await this.db.query(
        `UPDATE tasks t
            SET status = 'queued', worker_id = NULL, heartbeat_at = NULL, enqueued_at = NULL,
                start_time = NULL, updated_at = now()
           FROM (SELECT id, status, worker_id FROM tasks
                  WHERE ${REQUEUE_FROM} AND attempt < $2 AND ${LAPSED}
                  FOR UPDATE) was
          WHERE t.id = was.id
          RETURNING t.id, t.project_id, t.code_name, t.attempt, was.worker_id, was.status AS was`,
        [lapseSeconds, maxAttempts],
      ),
    );
    for (const row of requeued) logChanged(row, 'queued');
    const failed = rowsOf<LapsedTask & ChangedRow>(
      await this.db.query(
        `UPDATE tasks t
            SET status = 'error', heartbeat_at = NULL, end_time = now(), updated_at = now(),
                msg = 'Worker lost: no heartbeat for ' || $1 || ' s, after ' || t.attempt || ' attempts'
           FROM (SELECT id, status FROM tasks
                  WHERE ${FAIL_LAPSED_FROM} AND attempt >= $2 AND ${LAPSED}
                  FOR UPDATE) was
          WHERE t.id = was.id
          RETURNING t.project_id AS "projectId", t.code_name AS "codeName", t.cluster, t.priority,
                    t.id, t.project_id, t.code_name, t.attempt, t.worker_id, was.status AS was`,
        [lapseSeconds, maxAttempts],
      ),
    );
    for (const row of failed) logChanged(row, 'error');
    return {
      requeued: requeued.length,
      failed: failed.map(({ projectId, codeName, cluster, priority }) => ({
        projectId,
        codeName,
        cluster,
        priority,
      })),
    };
  }

  /** The attempts that `workerId` holds (taken, not ended): what a restarted worker recovers. */
  async heldBy(workerId: string): Promise<{ id: string; attempt: number }[]> {
    return this.db.query(`SELECT id, attempt FROM tasks WHERE worker_id = $1 AND ${HELD}`, [
      workerId,
    ]);
  }

  /**
   * Proves this worker still holds its tasks (the reconciler re-queues tasks whose heartbeat
   * lapses), and returns those of `taskIds` that are no longer this worker's to run — cancelled
   * or released meanwhile — so that their containers are stopped even if a signal was missed.
   */
  async heartbeat(workerId: string, taskIds: string[]): Promise<string[]> {
    if (taskIds.length === 0) return [];
    const alive = rowsOf<{ id: string }>(
      await this.db.query(
        `UPDATE tasks SET heartbeat_at = now()
          WHERE id = ANY($1) AND worker_id = $2 AND status IN ('preparing', 'running')
          RETURNING id`,
        [taskIds, workerId],
      ),
    );
    const held = new Set(alive.map((row) => row.id));
    return taskIds.filter((id) => !held.has(id));
  }
}

/** A task the reconciler ended `error` (its worker lost): what labels its metrics. */
export interface LapsedTask {
  projectId: string;
  codeName: string;
  cluster: string;
  priority: number;
}

interface TakeRow {
  status: TaskStatus;
  code_id: string;
  project_id: string;
  cluster: string;
  paused: boolean;
  max_concurrency: number | null;
  max_running: number | null;
}

export interface FinishResult {
  /** False when the task was no longer this attempt's to finish (cancelled, released, taken over). */
  finished: boolean;
  /** The automatic retry queued by this failure, if any. */
  retry: Task | null;
}

const RETRYABLE: readonly FinalStatus[] = ['error', 'timeout', 'killed'];

/** What a status change returns for its log line. */
interface ChangedRow {
  id: string;
  project_id: string;
  code_name: string;
  attempt: number;
  worker_id: string | null;
  was: TaskStatus;
}

function logChanged(row: ChangedRow, to: TaskStatus): void {
  logTransition({
    task_id: row.id,
    project_id: row.project_id,
    code: row.code_name,
    attempt: row.attempt,
    from: row.was,
    to,
    worker: row.worker_id,
  });
}

function logTaken(task: Task, from: TaskStatus | null, to: TaskStatus): void {
  logTransition({
    task_id: task.id,
    project_id: task.projectId,
    code: task.codeName,
    attempt: task.attempt,
    from,
    to,
    worker: task.workerId,
  });
}

/**
 * The common-case take (a code neither paused nor limited, a project without a limit) of one task,
 * `$1`, or of the array `$1` (`many`); a re-run's old log is cleared with it.
 */
function takeSql(many: boolean): string {
  return `WITH taken AS (
     UPDATE tasks t
        SET status = 'preparing', attempt = t.attempt + 1, worker_id = $2,
            heartbeat_at = now(), updated_at = now()
       FROM ${many ? 'unnest($1::char(24)[]) AS v(id), ' : ''}codes c, projects p
      WHERE t.id = ${many ? 'v.id' : '$1'} AND ${TAKE_FROM}
        AND c.id = t.code_id AND NOT c.paused AND c.max_concurrency IS NULL
        AND p.id = t.project_id AND coalesce(p.max_running, $3) IS NULL
      RETURNING t.*
   ), cleared AS (
     DELETE FROM task_log_chunks
      WHERE task_id IN (SELECT id FROM taken WHERE attempt > 1)
   )
   SELECT * FROM taken`;
}

/** preparing → running of the task `$1` at attempt `$2`, or of the arrays `$1`, `$2` (`many`). */
function runningSql(many: boolean): string {
  return `UPDATE tasks t SET status = 'running', start_time = now(), heartbeat_at = now(), updated_at = now()
    ${many ? 'FROM unnest($1::char(24)[], $2::int[]) AS v(id, attempt)' : ''}
    WHERE t.id = ${many ? 'v.id' : '$1'} AND t.attempt = ${many ? 'v.attempt' : '$2'} AND ${RUNNING_FROM}
    RETURNING t.id, t.project_id, t.code_name, t.attempt, t.worker_id, 'preparing' AS was`;
}
