import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';
import type { TokenRole } from './token-roles';

/**
 * An API token. Only the SHA-256 of the secret is stored; the secret is shown once, at creation.
 * A revoked token keeps its row, with `revokedAt` set, and never authenticates again.
 */
@Entity('tokens')
export class Token {
  @PrimaryColumn({ type: 'char', length: 24 })
  id!: string;

  @Column({ name: 'project_id', type: 'char', length: 24 })
  projectId!: string;

  @Column({ name: 'token_hash', type: 'char', length: 64 })
  tokenHash!: string;

  @Column({ type: 'text', default: '' })
  name!: string;

  @Column({ type: 'text', default: 'manage' })
  role!: TokenRole;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  /** Null: never expires. */
  @Column({ name: 'expires_at', type: 'timestamptz', nullable: true })
  expiresAt!: Date | null;

  /** Written at most about once a minute per token (see `ProjectsService`). */
  @Column({ name: 'last_used_at', type: 'timestamptz', nullable: true })
  lastUsedAt!: Date | null;

  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true })
  revokedAt!: Date | null;
}
