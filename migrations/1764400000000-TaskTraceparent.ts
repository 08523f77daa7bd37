import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Traces (docs/operations.md, "Traces"): the W3C `traceparent` of the span that created a task
 * (the API request, the schedule fire; a retry keeps its original's), for the worker's run and
 * the task's webhook deliveries to join that trace. Null when tracing is off. Adding a nullable
 * column without a default rewrites nothing.
 */
export class TaskTraceparent1764400000000 implements MigrationInterface {
  name = 'TaskTraceparent1764400000000';

  public async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE tasks ADD COLUMN IF NOT EXISTS traceparent varchar(55)`);
  }

  public async down(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE tasks DROP COLUMN IF EXISTS traceparent`);
  }
}
