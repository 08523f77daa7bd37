import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Tenancy (docs/security.md, "Clusters" and "Quotas"): the clusters the operator granted each
 * project, per-project quota overrides, a cluster for trigger URLs, and the indexes that keep the
 * quota counts cheap.
 */
export class ClusterGrants1764007200000 implements MigrationInterface {
  name = 'ClusterGrants1764007200000';

  public async up(db: QueryRunner): Promise<void> {
    // `default` is every project's without a row; any other cluster needs one.
    await db.query(`
      CREATE TABLE project_clusters (
        project_id  char(24)    NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        cluster     text        NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (project_id, cluster)
      )`);
    // The admin's overrides of the operator-wide quotas, e.g. {"queued_tasks": 5000000}.
    await db.query(`ALTER TABLE projects ADD COLUMN quotas jsonb NOT NULL DEFAULT '{}'`);
    await db.query(`ALTER TABLE code_triggers ADD COLUMN cluster text NOT NULL DEFAULT 'default'`);
    // The queued-tasks quota counts over tasks_project_status_created_idx: a partial index of
    // queued tasks would count faster but cost every task insert (docs/security.md, "Quotas").
    await db.query(
      `CREATE INDEX schedules_live_project_idx ON schedules (project_id) WHERE status = 'scheduled'`,
    );
  }

  public async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP INDEX schedules_live_project_idx`);
    await db.query(`ALTER TABLE code_triggers DROP COLUMN cluster`);
    await db.query(`ALTER TABLE projects DROP COLUMN quotas`);
    await db.query(`DROP TABLE project_clusters`);
  }
}
