import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

/** An API token. Only the SHA-256 of the secret is stored; the secret is shown once, at creation. */
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

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
