import { Column, CreateDateColumn, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import type { HotSetting } from './code-spec';

/**
 * A code package: a named, revisioned Docker image with its run settings. The row mirrors its
 * latest revision so that queueing needs one read.
 */
@Entity('codes')
export class Code {
  @PrimaryColumn({ type: 'char', length: 24 })
  id!: string;

  @Column({ name: 'project_id', type: 'char', length: 24 })
  projectId!: string;

  @Column({ type: 'text' })
  name!: string;

  @Column({ type: 'int' })
  rev!: number;

  @Column({ name: 'latest_revision_id', type: 'char', length: 24 })
  latestRevisionId!: string;

  @Column({ type: 'text' })
  image!: string;

  @Column({ type: 'text', default: '' })
  command!: string;

  @Column({ type: 'text', default: '' })
  config!: string;

  @Column({ name: 'env_vars', type: 'jsonb', default: () => "'{}'" })
  envVars!: Record<string, string>;

  /** CPUs its tasks may use; null: the operator's default (`KILN_CONTAINER_CPUS`). */
  @Column({ type: 'double precision', nullable: true })
  cpus!: number | null;

  /** Memory limit of its tasks, MiB; null: the operator's default (`KILN_CONTAINER_MEMORY_MB`). */
  @Column({ name: 'memory_mb', type: 'int', nullable: true })
  memoryMb!: number | null;

  /** Hot mode (docs/hot.md); null: cold. */
  @Column({ type: 'jsonb', nullable: true })
  hot!: HotSetting | null;

  /** Null means unlimited. */
  /** The zip package its tasks unpack into their directory (`sha256:<hex>`); null: image only. */
  @Column({ name: 'zip_digest', type: 'text', nullable: true })
  zipDigest!: string | null;

  @Column({ name: 'max_concurrency', type: 'int', nullable: true })
  maxConcurrency!: number | null;

  @Column({ type: 'int', default: 0 })
  retries!: number;

  @Column({ name: 'retries_delay', type: 'int', default: 0 })
  retriesDelay!: number;

  @Column({ name: 'default_priority', type: 'smallint', default: 0 })
  defaultPriority!: number;

  @Column({ type: 'boolean', default: false })
  paused!: boolean;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;

  @Column({ name: 'deleted_at', type: 'timestamptz', nullable: true })
  deletedAt!: Date | null;
}
