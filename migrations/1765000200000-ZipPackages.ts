import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Zip code packages (issue 20, docs/api.md "Zip packages"): the SHA-256 digest (`sha256:<hex>`) and
 * size of the zip a revision unpacks into its tasks' directory, kept in the platform registry, and
 * mirrored on the code like its other settings (IronWorker's `latest_checksum`). Null: an
 * image-only revision, which every existing one stays. Nullable without a default: adding the
 * column rewrites nothing.
 */
export class ZipPackages1765000200000 implements MigrationInterface {
  name = 'ZipPackages1765000200000';

  public async up(db: QueryRunner): Promise<void> {
    for (const table of ['codes', 'code_revisions']) {
      await db.query(`ALTER TABLE ${table} ADD COLUMN zip_digest text`);
    }
  }

  public async down(db: QueryRunner): Promise<void> {
    for (const table of ['codes', 'code_revisions']) {
      await db.query(`ALTER TABLE ${table} DROP COLUMN zip_digest`);
    }
  }
}
