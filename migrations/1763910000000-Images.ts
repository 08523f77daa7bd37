import { MigrationInterface, QueryRunner } from 'typeorm';

export class Images1763910000000 implements MigrationInterface {
  name = 'Images1763910000000';

  public async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE registry_credentials (
        project_id      char(24)    NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        server_address  text        NOT NULL,
        username        text        NOT NULL,
        secret          text        NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now(),
        updated_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (project_id, server_address)
      )`);
    await db.query(`
      CREATE TABLE pulled_images (
        worker_id     text        NOT NULL,
        image         text        NOT NULL,
        last_used_at  timestamptz NOT NULL,
        PRIMARY KEY (worker_id, image)
      )`);
  }

  public async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE pulled_images`);
    await db.query(`DROP TABLE registry_credentials`);
  }
}
