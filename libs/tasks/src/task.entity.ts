import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { TaskStatus } from './task-status';

@Entity('tasks')
export class Task {
  @PrimaryColumn({ type: 'char', length: 24 })
  id!: string;

  @Column({ name: 'project_id', type: 'char', length: 24 })
  projectId!: string;

  @Column({ name: 'code_id', type: 'char', length: 24 })
  codeId!: string;

  /** The code revision fixed when the task was queued (IronWorker's `code_history_id`). */
  @Column({ name: 'code_revision_id', type: 'char', length: 24 })
  codeRevisionId!: string;

  @Column({ name: 'code_name', type: 'text' })
  codeName!: string;

  @Column({ name: 'code_rev', type: 'int' })
  codeRev!: number;

  @Column({ type: 'text' })
  status!: TaskStatus;

  @Column({ type: 'smallint' })
  priority!: number;

  @Column({ type: 'text' })
  payload!: string;

  /** Seconds. */
  @Column({ type: 'int' })
  timeout!: number;

  /** Seconds between queueing and the earliest start. */
  @Column({ type: 'int', default: 0 })
  delay!: number;

  @Column({ type: 'text' })
  cluster!: string;

  @Column({ type: 'text', default: '' })
  label!: string;

  /** Times a worker has taken this task; final updates are compare-and-set on it. */
  @Column({ type: 'int', default: 0 })
  attempt!: number;

  @Column({ name: 'worker_id', type: 'text', nullable: true })
  workerId!: string | null;

  @Column({ name: 'heartbeat_at', type: 'timestamptz', nullable: true })
  heartbeatAt!: Date | null;

  @Column({ name: 'run_at', type: 'timestamptz' })
  runAt!: Date;

  /** When the task's job was last handed to Redis; null means the reconciler must enqueue it. */
  @Column({ name: 'enqueued_at', type: 'timestamptz', nullable: true })
  enqueuedAt!: Date | null;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Column({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;

  @Column({ name: 'start_time', type: 'timestamptz', nullable: true })
  startTime!: Date | null;

  @Column({ name: 'end_time', type: 'timestamptz', nullable: true })
  endTime!: Date | null;

  /** Milliseconds the container ran. */
  @Column({ name: 'duration_ms', type: 'int', nullable: true })
  durationMs!: number | null;

  @Column({ name: 'exit_code', type: 'int', nullable: true })
  exitCode!: number | null;

  @Column({ type: 'smallint', default: 0 })
  percent!: number;

  @Column({ type: 'text', default: '' })
  msg!: string;

  @Column({
    name: 'log_size',
    type: 'bigint',
    default: 0,
    transformer: { to: (v: number) => v, from: (v: string) => Number(v) },
  })
  logSize!: number;

  @Column({ name: 'original_task_id', type: 'char', length: 24, nullable: true })
  originalTaskId!: string | null;

  @Column({ name: 'retry_task_id', type: 'char', length: 24, nullable: true })
  retryTaskId!: string | null;

  @Column({ name: 'retry_count', type: 'int', default: 0 })
  retryCount!: number;

  @Column({ name: 'schedule_id', type: 'char', length: 24, nullable: true })
  scheduleId!: string | null;

  /** Called when the task ends (a delivery in the webhook outbox); null = none. */
  @Column({ type: 'text', nullable: true })
  webhook!: string | null;

  /** The schedule instant this task was fired for (unique per schedule). */
  @Column({ name: 'scheduled_for', type: 'timestamptz', nullable: true })
  scheduledFor!: Date | null;

  /** W3C `traceparent` of the span that created it (a retry: its original's); null untraced. */
  @Column({ type: 'varchar', length: 55, nullable: true })
  traceparent!: string | null;
}
