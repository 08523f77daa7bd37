import { Column, CreateDateColumn, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';

/** A project's login to one registry; the password is sealed with KILN_CREDENTIALS_KEY. */
@Entity('registry_credentials')
export class RegistryCredential {
  @PrimaryColumn({ name: 'project_id', type: 'char', length: 24 })
  projectId!: string;

  /** The registry host (`host[:port]`, `docker.io` for Docker Hub). */
  @PrimaryColumn({ name: 'server_address', type: 'text' })
  serverAddress!: string;

  @Column({ type: 'text' })
  username!: string;

  /** `seal()`ed JSON `{password, email}`. */
  @Column({ type: 'text' })
  secret!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
