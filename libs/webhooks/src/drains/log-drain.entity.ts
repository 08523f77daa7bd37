import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A project's receiver of its tasks' output (docs/operations.md, "Log drains"). */
@Entity('log_drains')
export class LogDrain {
  @PrimaryColumn({ type: 'char', length: 24 })
  id!: string;

  @Column({ name: 'project_id', type: 'char', length: 24 })
  projectId!: string;

  /** `syslog+tcp://host:port`, `syslog+tls://host:port` or `https://…`. */
  @Column({ type: 'text' })
  url!: string;

  /** Only tasks of this code; null = every code of the project. */
  @Column({ name: 'code_name', type: 'text', nullable: true })
  codeName!: string | null;

  /** The signing secret of an HTTPS drain, sealed; null for syslog. */
  @Column({ type: 'text', nullable: true })
  secret!: string | null;

  /** Failed attempts in a row; 0 while the receiver takes what it is sent. */
  @Column({ type: 'int', default: 0 })
  failures!: number;

  /** When a failing drain is tried next; null when it is not failing. */
  @Column({ name: 'retry_at', type: 'timestamptz', nullable: true })
  retryAt!: Date | null;

  /** Why the last attempt failed, in words that name no inside address. */
  @Column({ name: 'last_error', type: 'text', nullable: true })
  lastError!: string | null;

  @Column({ name: 'delivered_lines', type: 'bigint', default: 0 })
  deliveredLines!: string;

  @Column({ name: 'dropped_lines', type: 'bigint', default: 0 })
  droppedLines!: string;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  /**
   * Every task of the drain's scope that ended before this is done for it (sent or dropped):
   * its passes look no further back. Null until first swept: `createdAt`.
   */
  @Column({ name: 'swept_until', type: 'timestamptz', nullable: true })
  sweptUntil!: Date | null;

  @Column({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
