import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Fair webhook delivery with circuit breakers and bounded backlogs.
 *
 * - `webhook_deliveries.endpoint_key` names the endpoint a delivery goes to: the subscription's id,
 *   or for a task's own `webhook` `url:<project>:<scheme://authority>`, so that two projects
 *   never share an endpoint's circuit, share of the dispatcher or backlog.
 * - `webhook_endpoints` holds an endpoint's circuit (`closed`, `open` while parked, `disabled`),
 *   its failures in a row, its next probe and what it has dropped. No row: closed, never failed.
 * - `dropped`: a delivery beyond the endpoint's backlog cap (`KILN_WEBHOOK_MAX_PENDING`).
 * - The due index leads with the endpoint, so that the claim walks the endpoints with pending
 *   deliveries (one probe each) and reads from each only what it takes.
 */
export class WebhookCircuits1764100000000 implements MigrationInterface {
  name = 'WebhookCircuits1764100000000';

  public async up(db: QueryRunner): Promise<void> {
    await db.query(`
      ALTER TABLE webhook_deliveries ADD COLUMN endpoint_key text GENERATED ALWAYS AS (
        coalesce(webhook_id::text,
                 'url:' || project_id || ':' ||
                 lower(coalesce(substring(url FROM '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*'), url)))
      ) STORED`);
    await db.query(`ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_state_check`);
    await db.query(
      `ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_state_check
         CHECK (state IN ('pending', 'delivered', 'failed', 'dropped'))`,
    );
    await db.query(`DROP INDEX webhook_deliveries_due_idx`);
    await db.query(`DROP INDEX webhook_deliveries_order_idx`);
    await db.query(
      `CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (endpoint_key, next_attempt_at, seq)
        WHERE state = 'pending'`,
    );
    await db.query(
      `CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (endpoint_key, task_id, seq)
        WHERE state = 'pending'`,
    );
    await db.query(`
      CREATE TABLE webhook_endpoints (
        key         text        PRIMARY KEY,
        project_id  char(24)    NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        webhook_id  char(24)    REFERENCES webhooks(id) ON DELETE CASCADE,
        circuit     text        NOT NULL DEFAULT 'closed'
                                CHECK (circuit IN ('closed', 'open', 'disabled')),
        failures    int         NOT NULL DEFAULT 0,
        probes      int         NOT NULL DEFAULT 0,
        opened_at   timestamptz,
        probe_at    timestamptz,
        last_error  text,
        dropped     bigint      NOT NULL DEFAULT 0,
        updated_at  timestamptz NOT NULL DEFAULT now()
      )`);
    await db.query(`CREATE INDEX webhook_endpoints_project_idx ON webhook_endpoints (project_id)`);
  }

  public async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE webhook_endpoints`);
    await db.query(`DELETE FROM webhook_deliveries WHERE state = 'dropped'`);
    await db.query(`DROP INDEX webhook_deliveries_order_idx`);
    await db.query(`DROP INDEX webhook_deliveries_due_idx`);
    await db.query(`ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_state_check`);
    await db.query(
      `ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_state_check
         CHECK (state IN ('pending', 'delivered', 'failed'))`,
    );
    await db.query(`ALTER TABLE webhook_deliveries DROP COLUMN endpoint_key`);
    await db.query(
      `CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, seq) WHERE state = 'pending'`,
    );
    await db.query(
      `CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (coalesce(webhook_id, ''), task_id, seq) WHERE state = 'pending'`,
    );
  }
}
