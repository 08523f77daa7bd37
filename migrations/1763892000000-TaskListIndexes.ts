import { MigrationInterface, QueryRunner } from 'typeorm';

/** Status-filtered task lists (`?queued=1`) stay index-only walks however large the history. */
export class TaskListIndexes1763892000000 implements MigrationInterface {
  name = 'TaskListIndexes1763892000000';

  public async up(db: QueryRunner): Promise<void> {
    await db.query(
      `CREATE INDEX tasks_project_status_created_idx ON tasks (project_id, status, created_at DESC, id DESC)`,
    );
    await db.query(`CREATE INDEX tasks_code_created_idx ON tasks (code_id, created_at)`);
  }

  public async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP INDEX tasks_code_created_idx`);
    await db.query(`DROP INDEX tasks_project_status_created_idx`);
  }
}
