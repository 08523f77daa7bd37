import { Column, Entity, PrimaryColumn } from 'typeorm';

export enum LogStream {
  Stdout = 1,
  Stderr = 2,
  /** Lines Kiln itself writes into the log, e.g. the truncation marker. */
  Kiln = 3,
}

/** A piece of a task's output, from one stream, in the order it was printed. */
@Entity('task_log_chunks')
export class TaskLogChunk {
  @PrimaryColumn({ name: 'task_id', type: 'char', length: 24 })
  taskId!: string;

  @PrimaryColumn({ type: 'int' })
  seq!: number;

  @Column({ type: 'smallint' })
  stream!: LogStream;

  @Column({ type: 'text' })
  data!: string;
}
