import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { Task } from './task.entity';
import { FinalStatus } from './task-status';

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
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /**
   * queued → preparing for this worker, counting an attempt; null when the task is gone, cancelled
   * or already taken. A re-run starts with an empty log.
   */
  async take(taskId: string, workerId: string): Promise<Task | null> {
    return this.db.transaction(async (manager) => {
      const result: unknown = await manager.query(
        `UPDATE tasks
            SET status = 'preparing', attempt = attempt + 1, worker_id = $2,
                heartbeat_at = now(), updated_at = now()
          WHERE id = $1 AND status = 'queued'`,
        [taskId, workerId],
      );
      if (affected(result) !== 1) return null;
      await manager.query(`DELETE FROM task_log_chunks WHERE task_id = $1`, [taskId]);
      return manager.findOneBy(Task, { id: taskId });
    });
  }

  /** preparing → running, stamping `start_time`. */
  async markRunning(taskId: string, attempt: number): Promise<boolean> {
    const result: unknown = await this.db.query(
      `UPDATE tasks SET status = 'running', start_time = now(), heartbeat_at = now(), updated_at = now()
        WHERE id = $1 AND attempt = $2 AND status = 'preparing'`,
      [taskId, attempt],
    );
    return affected(result) === 1;
  }

  /** preparing|running → a final status, once. */
  async finish(taskId: string, attempt: number, outcome: TaskOutcome): Promise<boolean> {
    const result: unknown = await this.db.query(
      `UPDATE tasks
          SET status = $3, msg = $4, exit_code = $5, duration_ms = $6, log_size = $7,
              end_time = now(), updated_at = now(), heartbeat_at = NULL
        WHERE id = $1 AND attempt = $2 AND status IN ('preparing', 'running')`,
      [
        taskId,
        attempt,
        outcome.status,
        outcome.msg,
        outcome.exitCode,
        outcome.durationMs,
        outcome.logSize,
      ],
    );
    return affected(result) === 1;
  }

  /**
   * preparing|running → queued again, for a worker that stops (or restarts) before the task ends:
   * the reconciler enqueues it once more (at-least-once, never lost).
   */
  async release(taskId: string, attempt: number): Promise<boolean> {
    const result: unknown = await this.db.query(
      `UPDATE tasks
          SET status = 'queued', worker_id = NULL, heartbeat_at = NULL, enqueued_at = NULL,
              start_time = NULL, updated_at = now()
        WHERE id = $1 AND attempt = $2 AND status IN ('preparing', 'running')`,
      [taskId, attempt],
    );
    return affected(result) === 1;
  }

  /** Proves this worker still holds its tasks; the reconciler re-queues tasks whose heartbeat lapses. */
  async heartbeat(workerId: string, taskIds: string[]): Promise<void> {
    if (taskIds.length === 0) return;
    await this.db.query(
      `UPDATE tasks SET heartbeat_at = now()
        WHERE id = ANY($1) AND worker_id = $2 AND status IN ('preparing', 'running')`,
      [taskIds, workerId],
    );
  }

  /** The task's current status as seen by a running worker (to learn about cancellation). */
  async status(taskId: string): Promise<string | null> {
    const rows = await this.db.query<{ status: string }[]>(
      `SELECT status FROM tasks WHERE id = $1`,
      [taskId],
    );
    return rows[0]?.status ?? null;
  }
}

/** pg's UPDATE result through TypeORM's `query` is `[rows, rowCount]`. */
function affected(result: unknown): number {
  return Array.isArray(result) && typeof result[1] === 'number' ? result[1] : 0;
}
