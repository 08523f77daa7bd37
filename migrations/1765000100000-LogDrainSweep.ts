import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A log drain's `swept_until`: every task of its scope that ended before it is done for the drain
 * (sent or dropped), so the shipper's passes read only the tasks that ended since, not every task
 * ended within the buffer (two hours by default; docs/operations.md, "Log drains"). Null until
 * the first sweep, read as the drain's `created_at`. Nullable without a default: adding it
 * rewrites nothing.
 */
export class LogDrainSweep1765000100000 implements MigrationInterface {
  name = 'LogDrainSweep1765000100000';

  public async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE log_drains ADD COLUMN swept_until timestamptz`);
  }

  public async down(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE log_drains DROP COLUMN swept_until`);
  }
}
