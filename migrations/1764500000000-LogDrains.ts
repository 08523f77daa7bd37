import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Log drains (docs/operations.md, "Log drains"): a project's (or one code's) syslog or HTTPS
 * receivers of its tasks' output. The stored log chunks are the drains' durable buffer: a drain
 * keeps, per task, the seq of the last chunk its receiver accepted (`log_drain_cursors`), and the
 * scheduler's leader ships what lies past it.
 *
 * `task_log_chunks.at` tells how old an undelivered chunk is (a drain drops what is older than
 * its buffer). Its default, `now()`, is not volatile: adding it rewrites nothing (rows stored
 * before read the time of the migration), and the worker's INSERT does not name it.
 * `tasks_project_end_idx`, which finds a project's tasks that ended within the buffer, is built
 * CONCURRENTLY by the next migration (TaskListFilters): a plain CREATE INDEX here, in this
 * migration's transaction, would hold every write to `tasks` for the whole build.
 */
export class LogDrains1764500000000 implements MigrationInterface {
  name = 'LogDrains1764500000000';

  public async up(db: QueryRunner): Promise<void> {
    await db.query(
      `ALTER TABLE task_log_chunks ADD COLUMN IF NOT EXISTS at timestamptz NOT NULL DEFAULT now()`,
    );
    await db.query(`
      CREATE TABLE log_drains (
        id               char(24)    PRIMARY KEY,
        project_id       char(24)    NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        url              text        NOT NULL,
        code_name        text,
        secret           text,
        failures         int         NOT NULL DEFAULT 0,
        retry_at         timestamptz,
        last_error       text,
        delivered_lines  bigint      NOT NULL DEFAULT 0,
        dropped_lines    bigint      NOT NULL DEFAULT 0,
        created_at       timestamptz NOT NULL,
        updated_at       timestamptz NOT NULL
      )`);
    await db.query(`CREATE INDEX log_drains_project_idx ON log_drains (project_id, created_at)`);
    await db.query(`
      CREATE TABLE log_drain_cursors (
        drain_id  char(24) NOT NULL REFERENCES log_drains(id) ON DELETE CASCADE,
        task_id   char(24) NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        seq       int      NOT NULL,
        done      boolean  NOT NULL DEFAULT false,
        PRIMARY KEY (drain_id, task_id)
      )`);
    await db.query(`CREATE INDEX log_drain_cursors_task_idx ON log_drain_cursors (task_id)`);
  }

  public async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE IF EXISTS log_drain_cursors`);
    await db.query(`DROP TABLE IF EXISTS log_drains`);
    await db.query(`ALTER TABLE task_log_chunks DROP COLUMN IF EXISTS at`);
  }
}
