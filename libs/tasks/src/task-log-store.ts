import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { KilnException, utf8Head } from '@kiln/common';
import { preparedQuery } from '@kiln/database';
import { LogStream } from './task-log-chunk.entity';
import { isFinal, TaskStatus } from './task-status';
import type { Task } from './task.entity';

export interface LogChunk {
  seq: number;
  stream: LogStream;
  data: string;
}

/** Where a task's run and log stand: what a live follower compares with what it has sent. */
export interface LogHead {
  status: TaskStatus;
  attempt: number;
  /** The seq of the last stored chunk; 0 when none is. */
  lastSeq: number;
}

/** Task output in Postgres, as ordered chunks. */
@Injectable()
export class TaskLogStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /**
   * Appends chunks for one attempt of a task. Written only while that attempt is the task's
   * latest, so a stale worker cannot write into a newer run's log.
   */
  async append(taskId: string, attempt: number, chunks: LogChunk[]): Promise<void> {
    if (chunks.length === 0) return;
    await preparedQuery(
      this.db,
      'kiln-log-append',
      `INSERT INTO task_log_chunks (task_id, seq, stream, data)
       SELECT $1, c.seq, c.stream, c.data
         FROM unnest($3::int[], $4::smallint[], $5::text[]) AS c(seq, stream, data)
        WHERE EXISTS (SELECT 1 FROM tasks WHERE id = $1 AND attempt = $2)
       ON CONFLICT DO NOTHING`,
      [
        taskId,
        attempt,
        chunks.map((c) => c.seq),
        chunks.map((c) => c.stream),
        chunks.map((c) => c.data),
      ],
    );
  }

  /** Bytes of UTF-8 stored for the task (its `log_size` when the worker that ran it was lost). */
  async size(taskId: string): Promise<number> {
    const [row] = await this.db.query<{ bytes: number }[]>(
      `SELECT coalesce(sum(octet_length(data)), 0)::int AS bytes FROM task_log_chunks WHERE task_id = $1`,
      [taskId],
    );
    return row.bytes;
  }

  /** The chunks after `afterSeq`, in print order (what a live follower has not seen yet). */
  async readAfter(taskId: string, afterSeq: number): Promise<LogChunk[]> {
    return this.db.query<LogChunk[]>(
      `SELECT seq, stream, data FROM task_log_chunks WHERE task_id = $1 AND seq > $2 ORDER BY seq`,
      [taskId, afterSeq],
    );
  }

  /**
   * Where each of `taskIds` stands, in one statement (every live follower of an API process is
   * checked with one such query a second); a task that does not exist is missing from the map.
   */
  async heads(taskIds: string[]): Promise<Map<string, LogHead>> {
    const { rows } = await preparedQuery<{
      id: string;
      status: TaskStatus;
      attempt: number;
      last_seq: number;
    }>(
      this.db,
      'kiln-log-heads',
      `SELECT t.id, t.status, t.attempt,
              coalesce((SELECT max(c.seq) FROM task_log_chunks c WHERE c.task_id = t.id), 0) AS last_seq
         FROM tasks t
        WHERE t.id = ANY($1::char(24)[])`,
      [taskIds],
    );
    return new Map(
      rows.map((row) => [
        row.id,
        { status: row.status, attempt: row.attempt, lastSeq: Number(row.last_seq) },
      ]),
    );
  }

  /** The log as text, in print order; `streams` limits it (e.g. STDOUT alone for `outlog`). */
  async read(taskId: string, streams?: LogStream[]): Promise<string> {
    const { rows } = streams
      ? await preparedQuery<{ data: string }>(
          this.db,
          'kiln_log_read_streams',
          `SELECT data FROM task_log_chunks WHERE task_id = $1 AND stream = ANY($2) ORDER BY seq`,
          [taskId, streams],
        )
      : await preparedQuery<{ data: string }>(
          this.db,
          'kiln_log_read',
          `SELECT data FROM task_log_chunks WHERE task_id = $1 ORDER BY seq`,
          [taskId],
        );
    return rows.map((row) => row.data).join('');
  }

  /**
   * The first `maxBytes` of the log (STDOUT and STDERR in print order, cut between characters),
   * reading only the chunks that start within them; `truncated` when the log is longer.
   */
  async readHead(taskId: string, maxBytes: number): Promise<{ text: string; truncated: boolean }> {
    const { rows } = await preparedQuery<{ data: string; total: string }>(
      this.db,
      'kiln_log_read_head',
      `SELECT data, total FROM (
         SELECT seq, data,
                sum(octet_length(data)) OVER (ORDER BY seq) - octet_length(data) AS before,
                sum(octet_length(data)) OVER () AS total
           FROM task_log_chunks WHERE task_id = $1) c
        WHERE before < $2
        ORDER BY seq`,
      [taskId, maxBytes],
    );
    const total = rows.length > 0 ? Number(rows[0].total) : 0;
    const text = rows.map((row) => row.data).join('');
    return { text: utf8Head(text, maxBytes), truncated: total > maxBytes };
  }

  /**
   * The log of `task` as IronWorker serves it: STDOUT and STDERR in print order, the partial log
   * while it runs; 404 (with "log" in `msg`, which IronWorker's clients retry on) until it has
   * started.
   */
  async logOf(task: Task): Promise<string> {
    const log = await this.read(task.id);
    if (log === '' && (task.status === 'queued' || task.status === 'preparing')) {
      throw KilnException.notFound('Log not found: the task has not started yet');
    }
    return log;
  }

  /** STDOUT alone (for `sync` tasks, as `tasks.run` reads it); 404 until the task has ended. */
  async outputOf(task: Task): Promise<string> {
    if (!isFinal(task.status)) {
      throw KilnException.notFound('Output log not found: the task has not ended yet');
    }
    return this.read(task.id, [LogStream.Stdout]);
  }
}
