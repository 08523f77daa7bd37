import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';
import type { HotSetting } from './code-spec';

/** One registration of a code: what a task queued against this revision runs, forever. */
@Entity('code_revisions')
export class CodeRevision {
  @PrimaryColumn({ type: 'char', length: 24 })
  id!: string;

  @Column({ name: 'code_id', type: 'char', length: 24 })
  codeId!: string;

  @Column({ name: 'project_id', type: 'char', length: 24 })
  projectId!: string;

  @Column({ type: 'int' })
  rev!: number;

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

  /** The zip package its tasks unpack into their directory (`sha256:<hex>`); null: image only. */
  @Column({ name: 'zip_digest', type: 'text', nullable: true })
  zipDigest!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
