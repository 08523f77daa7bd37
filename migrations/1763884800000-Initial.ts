import { MigrationInterface, QueryRunner } from 'typeorm';

export class Initial1763884800000 implements MigrationInterface {
  name = 'Initial1763884800000';

  public async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE projects (
        id          char(24)    PRIMARY KEY,
        name        text        NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now()
      )`);
    await db.query(`
      CREATE TABLE tokens (
        id          char(24)    PRIMARY KEY,
        project_id  char(24)    NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        token_hash  char(64)    NOT NULL UNIQUE,
        name        text        NOT NULL DEFAULT '',
        created_at  timestamptz NOT NULL DEFAULT now()
      )`);
    await db.query(`CREATE INDEX tokens_project_idx ON tokens (project_id)`);
    await db.query(`
      CREATE TABLE codes (
        id                  char(24)    PRIMARY KEY,
        project_id          char(24)    NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        name                text        NOT NULL,
        rev                 int         NOT NULL,
        latest_revision_id  char(24)    NOT NULL,
        image               text        NOT NULL,
        command             text        NOT NULL DEFAULT '',
        config              text        NOT NULL DEFAULT '',
        env_vars            jsonb       NOT NULL DEFAULT '{}',
        max_concurrency     int,
        retries             int         NOT NULL DEFAULT 0,
        retries_delay       int         NOT NULL DEFAULT 0,
        default_priority    smallint    NOT NULL DEFAULT 0,
        paused              boolean     NOT NULL DEFAULT false,
        created_at          timestamptz NOT NULL DEFAULT now(),
        updated_at          timestamptz NOT NULL DEFAULT now(),
        deleted_at          timestamptz
      )`);
    // One live code per name; a deleted code's name can be registered again as a new code.
    await db.query(
      `CREATE UNIQUE INDEX codes_project_name_live ON codes (project_id, name) WHERE deleted_at IS NULL`,
    );
    await db.query(`
      CREATE TABLE code_revisions (
        id          char(24)    PRIMARY KEY,
        code_id     char(24)    NOT NULL REFERENCES codes(id) ON DELETE CASCADE,
        project_id  char(24)    NOT NULL,
        rev         int         NOT NULL,
        image       text        NOT NULL,
        command     text        NOT NULL DEFAULT '',
        config      text        NOT NULL DEFAULT '',
        env_vars    jsonb       NOT NULL DEFAULT '{}',
        created_at  timestamptz NOT NULL DEFAULT now(),
        UNIQUE (code_id, rev)
      )`);
    await db.query(`
      CREATE TABLE tasks (
        id                char(24)    PRIMARY KEY,
        project_id        char(24)    NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        code_id           char(24)    NOT NULL,
        code_revision_id  char(24)    NOT NULL,
        code_name         text        NOT NULL,
        code_rev          int         NOT NULL,
        status            text        NOT NULL CHECK (status IN
                            ('queued','preparing','running','complete','error','cancelled','killed','timeout')),
        priority          smallint    NOT NULL CHECK (priority BETWEEN 0 AND 2),
        payload           text        NOT NULL,
        timeout           int         NOT NULL CHECK (timeout > 0),
        delay             int         NOT NULL DEFAULT 0,
        cluster           text        NOT NULL,
        label             text        NOT NULL DEFAULT '',
        attempt           int         NOT NULL DEFAULT 0,
        worker_id         text,
        heartbeat_at      timestamptz,
        run_at            timestamptz NOT NULL,
        enqueued_at       timestamptz,
        created_at        timestamptz NOT NULL,
        updated_at        timestamptz NOT NULL,
        start_time        timestamptz,
        end_time          timestamptz,
        duration_ms       int,
        exit_code         int,
        percent           smallint    NOT NULL DEFAULT 0,
        msg               text        NOT NULL DEFAULT '',
        log_size          bigint      NOT NULL DEFAULT 0,
        original_task_id  char(24),
        retry_task_id     char(24),
        retry_count       int         NOT NULL DEFAULT 0,
        schedule_id       char(24)
      )`);
    await db.query(
      `CREATE INDEX tasks_project_created_idx ON tasks (project_id, created_at DESC, id DESC)`,
    );
    await db.query(`CREATE INDEX tasks_code_status_idx ON tasks (code_id, status)`);
    // The reconciler's scans: live tasks only, so the index stays small however much history piles up.
    await db.query(
      `CREATE INDEX tasks_live_idx ON tasks (status, run_at) WHERE status IN ('queued','preparing','running')`,
    );
    await db.query(`
      CREATE TABLE task_log_chunks (
        task_id  char(24) NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        seq      int      NOT NULL,
        stream   smallint NOT NULL,
        data     text     NOT NULL,
        PRIMARY KEY (task_id, seq)
      )`);
  }

  public async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE task_log_chunks`);
    await db.query(`DROP TABLE tasks`);
    await db.query(`DROP TABLE code_revisions`);
    await db.query(`DROP TABLE codes`);
    await db.query(`DROP TABLE tokens`);
    await db.query(`DROP TABLE projects`);
  }
}
