import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A project's subscription to task and schedule events. */
@Entity('webhooks')
export class Webhook {
  @PrimaryColumn({ type: 'char', length: 24 })
  id!: string;

  @Column({ name: 'project_id', type: 'char', length: 24 })
  projectId!: string;

  @Column({ type: 'text' })
  url!: string;

  @Column({ type: 'text', array: true })
  events!: string[];

  /** Only tasks (and schedules) of this code; null = every code. */
  @Column({ name: 'code_name', type: 'text', nullable: true })
  codeName!: string | null;

  @Column({ type: 'boolean', default: true })
  enabled!: boolean;

  /** Why Kiln disabled it (a 410 answer); null when enabled or disabled by its owner. */
  @Column({ name: 'disabled_reason', type: 'text', nullable: true })
  disabledReason!: string | null;

  @Column({ type: 'text', default: '' })
  description!: string;

  @Column({ type: 'text' })
  secret!: string;

  /** The secret before the last rotation, still signing until `previousSecretUntil`. */
  @Column({ name: 'previous_secret', type: 'text', nullable: true })
  previousSecret!: string | null;

  @Column({ name: 'previous_secret_until', type: 'timestamptz', nullable: true })
  previousSecretUntil!: Date | null;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Column({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
