import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A code's own container limits (issue 14): `cpus` (Docker `NanoCpus` / 1e9) and `memory_mb`,
 * on each revision (what its tasks run with) and mirrored on the code like its other settings.
 * Null means the operator's default (`KILN_CONTAINER_CPUS`, `KILN_CONTAINER_MEMORY_MB`). Nullable
 * columns without a default: adding them rewrites nothing.
 */
export class ContainerLimits1764200000000 implements MigrationInterface {
  name = 'ContainerLimits1764200000000';

  public async up(db: QueryRunner): Promise<void> {
    for (const table of ['codes', 'code_revisions']) {
      await db.query(`ALTER TABLE ${table} ADD COLUMN cpus double precision`);
      await db.query(`ALTER TABLE ${table} ADD COLUMN memory_mb integer`);
    }
  }

  public async down(db: QueryRunner): Promise<void> {
    for (const table of ['codes', 'code_revisions']) {
      await db.query(`ALTER TABLE ${table} DROP COLUMN memory_mb`);
      await db.query(`ALTER TABLE ${table} DROP COLUMN cpus`);
    }
  }
}
