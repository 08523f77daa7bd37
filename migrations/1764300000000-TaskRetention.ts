import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Retention (docs/operations.md): the scheduler's leader deletes finished tasks older than their
 * project's `retention_days` (null: `KILN_TASK_RETENTION_DAYS`), with their log chunks (by the
 * foreign key) and their webhook deliveries.
 *
 * - `tasks_finished_idx` finds a project's finished tasks oldest end first. It is partial on the
 *   final statuses: a task enters it when it ends (that update is not HOT anyway: `status` is
 *   indexed), so task inserts, which are all `queued`, write nothing to it.
 * - A statement-level trigger on `DELETE FROM tasks` deletes the deleted tasks' deliveries,
 *   whatever their state, in the same statement's transaction, as the foreign key does their
 *   log chunks (the outbox is the database's: see the Webhooks migration). One statement per
 *   DELETE, over `webhook_deliveries_task_idx`; nothing on inserts.
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
    await db.query(`
      CREATE OR REPLACE FUNCTION kiln_tasks_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        DELETE FROM webhook_deliveries w USING old_tasks o WHERE w.task_id = o.id;
        RETURN NULL;
      END $$`);
    await db.query(`DROP TRIGGER IF EXISTS tasks_webhook_deleted ON tasks`);
    await db.query(`
      CREATE TRIGGER tasks_webhook_deleted AFTER DELETE ON tasks
        REFERENCING OLD TABLE AS old_tasks
        FOR EACH STATEMENT EXECUTE FUNCTION kiln_tasks_deleted()`);
  }

  public async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TRIGGER IF EXISTS tasks_webhook_deleted ON tasks`);
    await db.query(`DROP FUNCTION IF EXISTS kiln_tasks_deleted()`);
    // Not CONCURRENTLY: TypeORM reverts inside a transaction whatever `transaction` says, and
    // dropping an index is quick (a brief exclusive lock, no scan).
    await db.query(`DROP INDEX IF EXISTS webhook_deliveries_task_idx`);
    await db.query(`DROP INDEX IF EXISTS tasks_finished_idx`);
    await db.query(`ALTER TABLE projects DROP COLUMN IF EXISTS retention_days`);
  }
}
