import { MigrationInterface, QueryRunner } from 'typeorm';

export class Schedules1763899200000 implements MigrationInterface {
  name = 'Schedules1763899200000';

  public async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE schedules (
        id             char(24)    PRIMARY KEY,
        project_id     char(24)    NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        code_name      text        NOT NULL,
        payload        text        NOT NULL,
        start_at       timestamptz NOT NULL,
        run_every      int         CHECK (run_every >= 60),
        cron           text,
        timezone       text        NOT NULL DEFAULT 'UTC',
        end_at         timestamptz,
        run_times      int         NOT NULL DEFAULT 0,
        priority       smallint,
        timeout        int,
        delay          int         NOT NULL DEFAULT 0,
        task_delay     int         NOT NULL DEFAULT 0,
        cluster        text        NOT NULL DEFAULT 'default',
        label          text        NOT NULL DEFAULT '',
        status         text        NOT NULL CHECK (status IN ('scheduled', 'complete', 'cancelled')),
        msg            text        NOT NULL DEFAULT '',
        run_count      int         NOT NULL DEFAULT 0,
        error_count    int         NOT NULL DEFAULT 0,
        last_run_time  timestamptz,
        next_start     timestamptz,
        created_at     timestamptz NOT NULL,
        updated_at     timestamptz NOT NULL
      )`);
    await db.query(
      `CREATE INDEX schedules_project_created_idx ON schedules (project_id, created_at DESC, id DESC)`,
    );
    await db.query(
      `CREATE INDEX schedules_due_idx ON schedules (next_start) WHERE status = 'scheduled'`,
    );
    // One task per schedule instant, whoever fires it: a paused ex-leader cannot double-fire.
    await db.query(`ALTER TABLE tasks ADD COLUMN scheduled_for timestamptz`);
    await db.query(
      `CREATE UNIQUE INDEX tasks_schedule_instant_key ON tasks (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL`,
    );
    // The scheduler's leader lease: renewed against the database clock, `term` is the fencing token.
    await db.query(`
      CREATE TABLE leader_leases (
        name        text        PRIMARY KEY,
        holder      text        NOT NULL,
        term        bigint      NOT NULL,
        expires_at  timestamptz NOT NULL
      )`);
    await db.query(
      `CREATE INDEX tasks_lapsed_idx ON tasks (heartbeat_at) WHERE status IN ('preparing', 'running')`,
    );
  }

  public async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP INDEX tasks_lapsed_idx`);
    await db.query(`DROP TABLE leader_leases`);
    await db.query(`DROP INDEX tasks_schedule_instant_key`);
    await db.query(`ALTER TABLE tasks DROP COLUMN scheduled_for`);
    await db.query(`DROP TABLE schedules`);
  }
}
