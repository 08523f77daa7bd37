import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Tokens get a role, an optional expiry, a last use and a revocation time. Every token that
 * exists (the one `npm start` writes to iron.json included) becomes `manage`, what it could do
 * before. A revoked token keeps its row (`revoked_at` set) so that who could act on a project,
 * and until when, can still be read after an incident; the secret's hash stays unique, so a
 * revoked secret can never come back as another token.
 */
export class TokenRoles1764000000000 implements MigrationInterface {
  name = 'TokenRoles1764000000000';

  public async up(db: QueryRunner): Promise<void> {
    await db.query(`
      ALTER TABLE tokens
        ADD COLUMN role text NOT NULL DEFAULT 'manage'
          CONSTRAINT tokens_role_check CHECK (role IN ('read', 'queue', 'manage')),
        ADD COLUMN expires_at   timestamptz,
        ADD COLUMN last_used_at timestamptz,
        ADD COLUMN revoked_at   timestamptz`);
  }

  public async down(db: QueryRunner): Promise<void> {
    // Revoked tokens must not come back to life as manage tokens.
    await db.query(`DELETE FROM tokens WHERE revoked_at IS NOT NULL`);
    await db.query(`
      ALTER TABLE tokens
        DROP COLUMN revoked_at,
        DROP COLUMN last_used_at,
        DROP COLUMN expires_at,
        DROP COLUMN role`);
  }
}
