import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `projects.max_running`: how many of a project's tasks may run at once in a cluster, across every
 * worker (null: the operator's `KILN_PROJECT_MAX_RUNNING`, 0 there meaning no limit). The partial
 * index keeps the count a worker makes before it takes a task of a limited project small.
 */
export class ProjectMaxRunning1764010800000 implements MigrationInterface {
  name = 'ProjectMaxRunning1764010800000';

  public async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE projects ADD COLUMN max_running integer CHECK (max_running > 0)`);
    await db.query(
      `CREATE INDEX tasks_project_live_idx ON tasks (project_id, cluster)
        WHERE status IN ('preparing', 'running')`,
    );
  }

  public async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP INDEX tasks_project_live_idx`);
    await db.query(`ALTER TABLE projects DROP COLUMN max_running`);
  }
}
