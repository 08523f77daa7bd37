import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Retention (docs/operations.md): the scheduler's leader deletes finished tasks older than their
 * project's `retention_days` (null: `KILN_TASK_RETENTION_DAYS`), with their log chunks (by the
 * foreign key) and their webhook deliveries.
 *
 * - `tasks_finished_idx` finds a project's finished tasks oldest end first. It is partial on the
 *   final statuses: a task enters it when it ends (that update is not HOT anyway: `status` is
 *   indexed), so task inserts, which are all `queued`, write nothing to it.
 * - `webhook_deliveries_task_idx` finds a deleted task's deliveries, whatever their state.
 *
 * Both are built CONCURRENTLY (outside a transaction), so that `tasks` and `webhook_deliveries`
 * take writes while they are built; a build that failed half way leaves an invalid index,
 * dropped first when the migration runs again.
 */
export class TaskRetention1764300000000 implements MigrationInterface {
  name = 'TaskRetention1764300000000';
  transaction = false;

  public async up(db: QueryRunner): Promise<void> {
    await db.query(
      `ALTER TABLE projects ADD COLUMN IF NOT EXISTS retention_days integer
         CHECK (retention_days BETWEEN 1 AND 3650)`,
    );
    await db.query(`DROP INDEX CONCURRENTLY IF EXISTS tasks_finished_idx`);
    await db.query(
      `CREATE INDEX CONCURRENTLY tasks_finished_idx
         ON tasks (project_id, (coalesce(end_time, created_at)))
         WHERE status IN ('complete', 'error', 'cancelled', 'killed', 'timeout')`,
    );
    await db.query(`DROP INDEX CONCURRENTLY IF EXISTS webhook_deliveries_task_idx`);
    await db.query(
      `CREATE INDEX CONCURRENTLY webhook_deliveries_task_idx
         ON webhook_deliveries (task_id) WHERE task_id IS NOT NULL`,
    );
  }

  public async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP INDEX CONCURRENTLY IF EXISTS webhook_deliveries_task_idx`);
    await db.query(`DROP INDEX CONCURRENTLY IF EXISTS tasks_finished_idx`);
    await db.query(`ALTER TABLE projects DROP COLUMN IF EXISTS retention_days`);
  }
}
