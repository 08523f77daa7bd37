import { Column, Entity, PrimaryColumn } from 'typeorm';

export type HmacEncoding = 'hex' | 'base64';

/** A URL that queues tasks of one code, authenticated by its own secret (kept as a hash). */
@Entity('code_triggers')
export class CodeTrigger {
  @PrimaryColumn({ type: 'char', length: 24 })
  id!: string;

  @Column({ name: 'project_id', type: 'char', length: 24 })
  projectId!: string;

  @Column({ name: 'code_id', type: 'char', length: 24 })
  codeId!: string;

  /** SHA-256 (hex) of the secret, which is shown once when the trigger is made. */
  @Column({ name: 'secret_hash', type: 'char', length: 64 })
  secretHash!: string;

  /** Header carrying the sender's HMAC of the body (e.g. `X-Hub-Signature-256`); null = none checked. */
  @Column({ name: 'hmac_header', type: 'text', nullable: true })
  hmacHeader!: string | null;

  @Column({ name: 'hmac_secret', type: 'text', nullable: true })
  hmacSecret!: string | null;

  /** What precedes the digest in the header, e.g. `sha256=`. */
  @Column({ name: 'hmac_prefix', type: 'text', default: '' })
  hmacPrefix!: string;

  @Column({ name: 'hmac_encoding', type: 'text', default: 'hex' })
  hmacEncoding!: HmacEncoding;

  /** Cluster of the tasks it queues: `default`, or one granted to the project. */
  @Column({ type: 'text', default: 'default' })
  cluster!: string;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true })
  revokedAt!: Date | null;
}
