import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Webhooks both ways. Outgoing: subscriptions (`webhooks`), a per-task `webhook` URL, and the
 * outbox `webhook_deliveries`, filled by triggers on `tasks` and `schedules` in the same
 * transaction as the status change whoever makes it (API, worker, scheduler, reconciler), and
 * drained by the delivery loop. Incoming: per-code trigger URLs (`code_triggers`).
 *
 * Cost when nobody listens: a task INSERT statement runs one statement-level trigger that joins
 * the new rows with the project's enabled subscriptions (none: nothing is written); a status
 * change runs one row trigger that probes `webhooks` by project. No row, no round trip.
 */
export class Webhooks1763913600000 implements MigrationInterface {
  name = 'Webhooks1763913600000';

  public async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE tasks ADD COLUMN webhook text`);
    await db.query(`
      CREATE TABLE webhooks (
        id                     char(24)    PRIMARY KEY,
        project_id             char(24)    NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        url                    text        NOT NULL,
        events                 text[]      NOT NULL,
        code_name              text,
        enabled                boolean     NOT NULL DEFAULT true,
        disabled_reason        text,
        description            text        NOT NULL DEFAULT '',
        secret                 text        NOT NULL,
        previous_secret        text,
        previous_secret_until  timestamptz,
        created_at             timestamptz NOT NULL,
        updated_at             timestamptz NOT NULL
      )`);
    await db.query(`CREATE INDEX webhooks_project_idx ON webhooks (project_id, created_at)`);
    // The secret signing per-task `webhook` calls, one per project, made on first use.
    await db.query(`
      CREATE TABLE project_webhook_secrets (
        project_id  char(24)    PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
        secret      text        NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now()
      )`);
    await db.query(`CREATE SEQUENCE webhook_delivery_seq`);
    await db.query(`
      CREATE TABLE webhook_deliveries (
        id               char(24)    PRIMARY KEY,
        seq              bigint      NOT NULL,
        project_id       char(24)    NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        webhook_id       char(24)    REFERENCES webhooks(id) ON DELETE CASCADE,
        url              text,
        message_id       text        NOT NULL,
        event_type       text        NOT NULL,
        task_id          char(24),
        schedule_id      char(24),
        body             text        NOT NULL,
        state            text        NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        attempt          int         NOT NULL DEFAULT 0,
        retry_base       int         NOT NULL DEFAULT 0,
        status_code      int,
        error            text,
        duration_ms      int,
        created_at       timestamptz NOT NULL,
        updated_at       timestamptz NOT NULL,
        next_attempt_at  timestamptz,
        delivered_at     timestamptz,
        CHECK ((webhook_id IS NULL) <> (url IS NULL))
      )`);
    // In the claim's order, so that a claim reads only the rows it takes however long the backlog
    // (ordering by a column outside the index made every claim sort all due rows: O(backlog)).
    await db.query(
      `CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, seq) WHERE state = 'pending'`,
    );
    // A task's events reach an endpoint one at a time, in order: the claim looks for an earlier
    // pending delivery of the same (endpoint, task).
    await db.query(
      `CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (coalesce(webhook_id, ''), task_id, seq) WHERE state = 'pending'`,
    );
    await db.query(
      `CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (webhook_id, seq DESC)`,
    );
    await db.query(
      `CREATE INDEX webhook_deliveries_finished_idx ON webhook_deliveries (updated_at) WHERE state <> 'pending'`,
    );

    await db.query(`
      CREATE FUNCTION kiln_time(value timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
        SELECT CASE WHEN value IS NULL THEN '0001-01-01T00:00:00Z'
                    ELSE to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END
      $$`);
    await db.query(`
      CREATE FUNCTION kiln_delivery_id(seq bigint) RETURNS char(24) LANGUAGE sql STABLE AS $$
        SELECT lpad(to_hex(extract(epoch FROM now())::bigint), 8, '0') || lpad(to_hex(seq), 16, '0')
      $$`);
    // The thin event the receiver gets: enough to act on, and ids to fetch the rest.
    await db.query(`
      CREATE FUNCTION kiln_task_event(event_type text, t tasks) RETURNS text LANGUAGE sql STABLE AS $$
        SELECT json_build_object(
          'type', event_type,
          'timestamp', kiln_time(now()),
          'data', json_build_object(
            'task_id', t.id, 'project_id', t.project_id, 'code_id', t.code_id,
            'code_name', t.code_name, 'status', t.status, 'attempt', t.attempt,
            'retry_count', t.retry_count, 'original_task_id', t.original_task_id,
            'schedule_id', t.schedule_id, 'label', t.label,
            'created_at', kiln_time(t.created_at), 'start_time', kiln_time(t.start_time),
            'end_time', kiln_time(t.end_time), 'msg', t.msg))::text
      $$`);
    // task.queued for new tasks: one pass over the statement's rows (a transition table's rows are
    // anonymous records, hence the round trip through JSON, paid only for subscribed tasks).
    await db.query(`
      CREATE FUNCTION kiln_tasks_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO webhook_deliveries
               (id, seq, project_id, webhook_id, message_id, event_type, task_id, body, state,
                created_at, updated_at, next_attempt_at)
        SELECT kiln_delivery_id(s.seq), s.seq, s.project_id, s.webhook_id,
               'msg_' || s.task_id || '_queued_0', 'task.queued', s.task_id,
               kiln_task_event('task.queued', json_populate_record(null::tasks, s.t)), 'pending',
               now(), now(), now()
          FROM (SELECT nextval('webhook_delivery_seq') AS seq, n.project_id, w.id AS webhook_id,
                       n.id AS task_id, row_to_json(n) AS t
                  FROM new_tasks n
                  JOIN webhooks w ON w.project_id = n.project_id AND w.enabled
                   AND 'task.queued' = ANY (w.events)
                   AND (w.code_name IS NULL OR w.code_name = n.code_name)) s;
        IF FOUND THEN PERFORM pg_notify('kiln_webhooks', ''); END IF;
        RETURN NULL;
      END $$`);
    await db.query(`
      CREATE TRIGGER tasks_webhook_queued AFTER INSERT ON tasks
        REFERENCING NEW TABLE AS new_tasks
        FOR EACH STATEMENT EXECUTE FUNCTION kiln_tasks_inserted()`);
    // Every later status change (but `preparing`, which no event names): the project's matching
    // subscriptions, and the task's own `webhook` when it ends.
    await db.query(`
      CREATE FUNCTION kiln_task_status_changed() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        event_type text := 'task.' || NEW.status;
        ended boolean := NEW.status IN ('complete', 'error', 'cancelled', 'killed', 'timeout');
        message text := 'msg_' || NEW.id || '_' || NEW.status || '_' || NEW.attempt;
        body text;
      BEGIN
        IF NOT (ended AND NEW.webhook IS NOT NULL) AND NOT EXISTS (
          SELECT 1 FROM webhooks w
           WHERE w.project_id = NEW.project_id AND w.enabled AND event_type = ANY (w.events)
             AND (w.code_name IS NULL OR w.code_name = NEW.code_name)) THEN
          RETURN NULL;
        END IF;
        body := kiln_task_event(event_type, NEW);
        INSERT INTO webhook_deliveries
               (id, seq, project_id, webhook_id, message_id, event_type, task_id, body, state,
                created_at, updated_at, next_attempt_at)
        SELECT kiln_delivery_id(s.seq), s.seq, NEW.project_id, s.webhook_id, message, event_type,
               NEW.id, body, 'pending', now(), now(), now()
          FROM (SELECT nextval('webhook_delivery_seq') AS seq, w.id AS webhook_id
                  FROM webhooks w
                 WHERE w.project_id = NEW.project_id AND w.enabled AND event_type = ANY (w.events)
                   AND (w.code_name IS NULL OR w.code_name = NEW.code_name)
                 ORDER BY w.id) s;
        IF ended AND NEW.webhook IS NOT NULL THEN
          INSERT INTO webhook_deliveries
                 (id, seq, project_id, url, message_id, event_type, task_id, body, state,
                  created_at, updated_at, next_attempt_at)
          SELECT kiln_delivery_id(s.seq), s.seq, NEW.project_id, NEW.webhook, message, event_type,
                 NEW.id, body, 'pending', now(), now(), now()
            FROM (SELECT nextval('webhook_delivery_seq') AS seq) s;
        END IF;
        PERFORM pg_notify('kiln_webhooks', '');
        RETURN NULL;
      END $$`);
    await db.query(`
      CREATE TRIGGER tasks_webhook_status AFTER UPDATE OF status ON tasks
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status <> 'preparing')
        EXECUTE FUNCTION kiln_task_status_changed()`);
    // schedule.complete: run_times used up or end_at passed.
    await db.query(`
      CREATE FUNCTION kiln_schedule_completed() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        body text := json_build_object(
          'type', 'schedule.complete',
          'timestamp', kiln_time(now()),
          'data', json_build_object(
            'schedule_id', NEW.id, 'project_id', NEW.project_id, 'code_name', NEW.code_name,
            'status', NEW.status, 'run_count', NEW.run_count, 'msg', NEW.msg,
            'created_at', kiln_time(NEW.created_at),
            'last_run_time', kiln_time(NEW.last_run_time)))::text;
      BEGIN
        INSERT INTO webhook_deliveries
               (id, seq, project_id, webhook_id, message_id, event_type, schedule_id, body, state,
                created_at, updated_at, next_attempt_at)
        SELECT kiln_delivery_id(s.seq), s.seq, NEW.project_id, s.webhook_id,
               'msg_' || NEW.id || '_complete', 'schedule.complete', NEW.id, body, 'pending',
               now(), now(), now()
          FROM (SELECT nextval('webhook_delivery_seq') AS seq, w.id AS webhook_id
                  FROM webhooks w
                 WHERE w.project_id = NEW.project_id AND w.enabled
                   AND 'schedule.complete' = ANY (w.events)
                   AND (w.code_name IS NULL OR w.code_name = NEW.code_name)
                 ORDER BY w.id) s;
        IF FOUND THEN PERFORM pg_notify('kiln_webhooks', ''); END IF;
        RETURN NULL;
      END $$`);
    await db.query(`
      CREATE TRIGGER schedules_webhook_complete AFTER UPDATE OF status ON schedules
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status = 'complete')
        EXECUTE FUNCTION kiln_schedule_completed()`);

    // Incoming: a URL that queues one code, with its own revocable secret (stored hashed).
    await db.query(`
      CREATE TABLE code_triggers (
        id             char(24)    PRIMARY KEY,
        project_id     char(24)    NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        code_id        char(24)    NOT NULL REFERENCES codes(id) ON DELETE CASCADE,
        secret_hash    char(64)    NOT NULL,
        hmac_header    text,
        hmac_secret    text,
        hmac_prefix    text        NOT NULL DEFAULT '',
        hmac_encoding  text        NOT NULL DEFAULT 'hex' CHECK (hmac_encoding IN ('hex', 'base64')),
        created_at     timestamptz NOT NULL,
        revoked_at     timestamptz
      )`);
    await db.query(`CREATE INDEX code_triggers_code_idx ON code_triggers (code_id, created_at)`);
  }

  public async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE code_triggers`);
    await db.query(`DROP TRIGGER schedules_webhook_complete ON schedules`);
    await db.query(`DROP TRIGGER tasks_webhook_status ON tasks`);
    await db.query(`DROP TRIGGER tasks_webhook_queued ON tasks`);
    await db.query(`DROP FUNCTION kiln_schedule_completed()`);
    await db.query(`DROP FUNCTION kiln_task_status_changed()`);
    await db.query(`DROP FUNCTION kiln_tasks_inserted()`);
    await db.query(`DROP FUNCTION kiln_task_event(text, tasks)`);
    await db.query(`DROP FUNCTION kiln_delivery_id(bigint)`);
    await db.query(`DROP FUNCTION kiln_time(timestamptz)`);
    await db.query(`DROP TABLE webhook_deliveries`);
    await db.query(`DROP SEQUENCE webhook_delivery_seq`);
    await db.query(`DROP TABLE project_webhook_secrets`);
    await db.query(`DROP TABLE webhooks`);
    await db.query(`ALTER TABLE tasks DROP COLUMN webhook`);
  }
}
