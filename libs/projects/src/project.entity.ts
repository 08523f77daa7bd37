import { Column, CreateDateColumn, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';

@Entity('projects')
export class Project {
  @PrimaryColumn({ type: 'char', length: 24 })
  id!: string;

  @Column({ type: 'text' })
  name!: string;

  /** Tasks of the project running at once in a cluster; null: the operator's default. */
  @Column({ name: 'max_running', type: 'integer', nullable: true })
  maxRunning!: number | null;

  /**
   * Days a finished task of the project is kept, with its log and deliveries; null: the
   * operator's `KILN_TASK_RETENTION_DAYS`.
   */
  @Column({ name: 'retention_days', type: 'integer', nullable: true })
  retentionDays!: number | null;

  /** The admin's overrides of the operator-wide quotas, by API name (`queued_tasks`…). */
  @Column({ type: 'jsonb', default: {} })
  quotas!: Record<string, number>;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
