import { Column, Entity, PrimaryColumn } from 'typeorm';

export type ScheduleStatus = 'scheduled' | 'complete' | 'cancelled';

/**
 * A schedule: IronWorker's (`start_at`, `run_every`, `end_at`, `run_times`) or Kiln's `cron` with
 * an IANA `timezone`. `next_start` is the instant it fires next; the scheduler advances it in the
 * same transaction that inserts the task.
 */
@Entity('schedules')
export class Schedule {
  @PrimaryColumn({ type: 'char', length: 24 })
  id!: string;

  @Column({ name: 'project_id', type: 'char', length: 24 })
  projectId!: string;

  @Column({ name: 'code_name', type: 'text' })
  codeName!: string;

  @Column({ type: 'text' })
  payload!: string;

  @Column({ name: 'start_at', type: 'timestamptz' })
  startAt!: Date;

  /** Seconds between runs (≥ 60); null for a cron or a one-shot schedule. */
  @Column({ name: 'run_every', type: 'int', nullable: true })
  runEvery!: number | null;

  @Column({ type: 'text', nullable: true })
  cron!: string | null;

  @Column({ type: 'text', default: 'UTC' })
  timezone!: string;

  @Column({ name: 'end_at', type: 'timestamptz', nullable: true })
  endAt!: Date | null;

  /** 0 = unlimited. */
  @Column({ name: 'run_times', type: 'int', default: 0 })
  runTimes!: number;

  @Column({ type: 'smallint', nullable: true })
  priority!: number | null;

  @Column({ type: 'int', nullable: true })
  timeout!: number | null;

  @Column({ type: 'int', default: 0 })
  delay!: number;

  @Column({ name: 'task_delay', type: 'int', default: 0 })
  taskDelay!: number;

  @Column({ type: 'text', default: 'default' })
  cluster!: string;

  @Column({ type: 'text', default: '' })
  label!: string;

  @Column({ type: 'text' })
  status!: ScheduleStatus;

  @Column({ type: 'text', default: '' })
  msg!: string;

  @Column({ name: 'run_count', type: 'int', default: 0 })
  runCount!: number;

  @Column({ name: 'error_count', type: 'int', default: 0 })
  errorCount!: number;

  @Column({ name: 'last_run_time', type: 'timestamptz', nullable: true })
  lastRunTime!: Date | null;

  @Column({ name: 'next_start', type: 'timestamptz', nullable: true })
  nextStart!: Date | null;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Column({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
