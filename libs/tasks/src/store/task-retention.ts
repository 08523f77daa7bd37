import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { rowsOf } from '@kiln/database';
import { FINAL_STATUSES } from '../task-status';

/** What one {@link TaskRetentionStore.purgeBatch} deleted. */
export interface PurgedBatch {
  /**
   * Tasks deleted. Their log chunks went with them (by the foreign key), and so did their
   * webhook deliveries (by the outbox's trigger on `DELETE FROM tasks`).
   */
  tasks: number;
  /** The greatest project id a task was deleted from: where the next batch starts. */
  lastProjectId: string | null;
}

const FINAL = FINAL_STATUSES.map((status) => `'${status}'`).join(', ');

/**
 * One batch: walks the projects from `$1` in id order and takes from each its finished tasks
 * that ended (or, never started, were created) more than its retention ago, oldest first, until
 * `$3` are found, and deletes them. Each project costs one descent of
 * `tasks_finished_idx` (project, end), and only the rows to delete are read: projects that keep
 * their tasks longer are never scanned past. Rows another transaction holds (a retry linking its
 * original, a cancel finishing) are skipped, not waited for: the next pass takes them.
 */
const PURGE_SQL = `
  WITH doomed AS (
    SELECT t.id
      FROM projects p
      CROSS JOIN LATERAL (
        SELECT t.id FROM tasks t
         WHERE t.project_id = p.id
           AND t.status IN (${FINAL})
           AND coalesce(t.end_time, t.created_at)
                 < now() - make_interval(days => coalesce(p.retention_days, $2))
         ORDER BY coalesce(t.end_time, t.created_at)
         LIMIT $3
         FOR UPDATE OF t SKIP LOCKED) t
     WHERE p.id >= $1
     ORDER BY p.id
     LIMIT $3),
  gone AS (
    DELETE FROM tasks t USING doomed d WHERE t.id = d.id RETURNING t.project_id)
  SELECT count(*)::int AS tasks, max(project_id) AS last_project_id FROM gone`;

/**
 * The statements of retention (docs/operations.md, "Retention"): deleting finished tasks past
 * their project's retention; their logs and deliveries go with them in the database. A task's retry, or the original it
 * retried, may outlive it: `original_task_id` and `retry_task_id` are plain ids, not foreign
 * keys, and a task whose partner is gone reads as before (the partner's id answers 404).
 */
@Injectable()
export class TaskRetentionStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /**
   * Deletes at most `limit` expired tasks of the projects from `fromProjectId` on (`''`: all),
   * one statement. `defaultDays` is the retention of a project without its own.
   */
  async purgeBatch(
    fromProjectId: string,
    defaultDays: number,
    limit: number,
  ): Promise<PurgedBatch> {
    const [row] = rowsOf<{ tasks: number; last_project_id: string | null }>(
      await this.db.query(PURGE_SQL, [fromProjectId, defaultDays, limit]),
    );
    return { tasks: row.tasks, lastProjectId: row.last_project_id };
  }
}
