import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A code's hot mode (issue 17, docs/hot.md): `{idleTimeout, maxTasks, maxContainers}` on each
 * revision (what its tasks run with) and mirrored on the code like its other settings. Null means
 * cold, a container per task, which every existing code stays. Nullable without a default:
 * adding the columns rewrites nothing.
 */
export class HotCodes1764900000000 implements MigrationInterface {
  name = 'HotCodes1764900000000';

  public async up(db: QueryRunner): Promise<void> {
    for (const table of ['codes', 'code_revisions']) {
      await db.query(`ALTER TABLE ${table} ADD COLUMN hot jsonb`);
    }
  }

  public async down(db: QueryRunner): Promise<void> {
    for (const table of ['codes', 'code_revisions']) {
      await db.query(`ALTER TABLE ${table} DROP COLUMN hot`);
    }
  }
}
