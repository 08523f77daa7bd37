import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { LogStream, TaskStatus } from '@kiln/tasks';

/** A drain as the shipper reads it. */
export interface DueDrain {
  id: string;
  projectId: string;
  url: string;
  codeName: string | null;
  secret: string | null;
  failures: number;
  createdAt: Date;
  /** Every task of its scope that ended before this is done for it (its `swept_until`). */
  sweptUntil: Date;
}

/** A task with output the drain may not have had yet. */
export interface DrainTask {
  id: string;
  codeName: string;
  status: TaskStatus;
  /** The seq of the last chunk the drain's receiver accepted (or that was dropped); 0: none. */
  cursor: number;
  lastSeq: number;
}

export interface DrainChunk {
  taskId: string;
  seq: number;
  stream: LogStream;
  data: string;
  at: Date;
}

/** Where a drain stands in a task after a batch. */
export interface CursorMove {
  taskId: string;
  seq: number;
  done: boolean;
}

/** The Postgres side of the log drains' shipper: drains, their cursors, the chunks past them. */
@Injectable()
export class LogDrainStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** Drains not waiting out a back-off. */
  async due(now: Date): Promise<DueDrain[]> {
    const rows = await this.db.query<
      {
        id: string;
        project_id: string;
        url: string;
        code_name: string | null;
        secret: string | null;
        failures: number;
        created_at: Date;
        swept_until: Date;
      }[]
    >(
      `SELECT id, project_id, url, code_name, secret, failures, created_at,
              coalesce(swept_until, created_at) AS swept_until
         FROM log_drains WHERE retry_at IS NULL OR retry_at <= $1 ORDER BY id`,
      [now],
    );
    return rows.map((r) => ({
      id: r.id,
      projectId: r.project_id,
      url: r.url,
      codeName: r.code_name,
      secret: r.secret,
      failures: r.failures,
      createdAt: r.created_at,
      sweptUntil: r.swept_until,
    }));
  }

  /**
   * The drain's project's (or code's) tasks it is not done with: running, or ended since it was
   * last swept ({@link sweep}) and within `endedAfter`, oldest first. A task ended longer ago is
   * out of any buffer: what the drain had not received of it was dropped (and counted) on the
   * way. Both bounds of `end_time` are index conditions (`tasks_project_end_idx`): a pass reads
   * the tasks ended since the sweep, not all those within the buffer.
   */
  async tasks(drain: DueDrain, endedAfter: Date, limit: number): Promise<DrainTask[]> {
    const rows = await this.db.query<
      { id: string; code_name: string; status: TaskStatus; cursor: string; last_seq: string }[]
    >(
      `SELECT t.id, t.code_name, t.status, coalesce(c.seq, 0) AS cursor,
              coalesce((SELECT max(l.seq) FROM task_log_chunks l WHERE l.task_id = t.id), 0) AS last_seq
         FROM tasks t
         LEFT JOIN log_drain_cursors c ON c.drain_id = $1 AND c.task_id = t.id
        WHERE t.project_id = $2
          AND ($3::text IS NULL OR t.code_name = $3)
          AND (t.status IN ('preparing', 'running') OR (t.end_time > $4 AND t.end_time >= $5))
          AND coalesce(c.done, false) = false
        ORDER BY t.start_time NULLS LAST, t.id
        LIMIT $6`,
      [drain.id, drain.projectId, drain.codeName, endedAfter, drain.sweptUntil, limit],
    );
    return rows.map((r) => ({
      id: r.id,
      codeName: r.code_name,
      status: r.status,
      cursor: Number(r.cursor),
      lastSeq: Number(r.last_seq),
    }));
  }

  /**
   * Moves the drain's `swept_until` up to the end of the oldest ended task it is not done with,
   * and never past `lagSeconds` ago nor back: a task's `end_time` is its final transaction's
   * start, which may commit a little later, so the mark stays that far behind the clock (a
   * final transaction longer than that would be passed over by the drain). Tasks ended before
   * `endedAfter` are out of the buffer and do not hold it back.
   */
  async sweep(drain: DueDrain, endedAfter: Date, lagSeconds: number): Promise<void> {
    await this.db.query(
      `UPDATE log_drains d
          SET swept_until = greatest(coalesce(d.swept_until, d.created_at), least(
                now() - $3 * interval '1 second',
                coalesce((SELECT min(t.end_time)
                            FROM tasks t
                            LEFT JOIN log_drain_cursors c ON c.drain_id = d.id AND c.task_id = t.id
                           WHERE t.project_id = d.project_id
                             AND (d.code_name IS NULL OR t.code_name = d.code_name)
                             AND t.end_time > $2
                             AND t.end_time >= coalesce(d.swept_until, d.created_at)
                             AND coalesce(c.done, false) = false), 'infinity')))
        WHERE d.id = $1`,
      [drain.id, endedAfter, lagSeconds],
    );
  }

  /**
   * The chunks past each task's cursor, at most `perTask` of each, by task then seq, and no more
   * than `budgetBytes` of output in all (the chunk that crosses it comes too): a round never
   * holds more than about one batch in memory, however much the drain is behind. The sizes are
   * summed from `octet_length` (stored sizes, read without the data itself); only the chunks
   * returned have their data read.
   */
  async chunks(tasks: DrainTask[], perTask: number, budgetBytes: number): Promise<DrainChunk[]> {
    if (tasks.length === 0) return [];
    const rows = await this.db.query<
      { task_id: string; seq: number; stream: LogStream; data: string; at: Date }[]
    >(
      `SELECT w.task_id, w.seq, w.stream, w.data, w.at
         FROM (SELECT c.task_id, c.seq, c.stream, c.data, c.at, p.n,
                      sum(c.len) OVER (ORDER BY p.n, c.seq) - c.len AS before
                 FROM unnest($1::char(24)[], $2::int[]) WITH ORDINALITY AS p(task_id, cursor, n)
                 CROSS JOIN LATERAL (
                   SELECT l.task_id, l.seq, l.stream, l.data, l.at, octet_length(l.data) AS len
                     FROM task_log_chunks l
                    WHERE l.task_id = p.task_id AND l.seq > p.cursor ORDER BY l.seq LIMIT $3
                 ) c) w
        WHERE w.before < $4
        ORDER BY w.n, w.seq`,
      [tasks.map((t) => t.id), tasks.map((t) => t.cursor), perTask, budgetBytes],
    );
    return rows.map((r) => ({
      taskId: r.task_id,
      seq: r.seq,
      stream: r.stream,
      data: r.data,
      at: r.at,
    }));
  }

  /**
   * Moves the drain's cursors (never back) and adds to its counts; `failure` records a failed
   * attempt and when to try next, its absence a success. Tasks or a drain deleted meanwhile are
   * passed over.
   */
  async record(
    drainId: string,
    moves: CursorMove[],
    counts: { delivered: number; dropped: number },
    failure: { error: string; retryAt: Date } | null,
  ): Promise<void> {
    await this.db.transaction(async (db) => {
      if (moves.length > 0) {
        await db.query(
          `INSERT INTO log_drain_cursors (drain_id, task_id, seq, done)
           SELECT $1, m.task_id, m.seq, m.done
             FROM unnest($2::char(24)[], $3::int[], $4::boolean[]) AS m(task_id, seq, done)
            WHERE EXISTS (SELECT 1 FROM tasks t WHERE t.id = m.task_id)
              AND EXISTS (SELECT 1 FROM log_drains d WHERE d.id = $1)
           ON CONFLICT (drain_id, task_id) DO UPDATE
             SET seq = greatest(log_drain_cursors.seq, excluded.seq),
                 done = log_drain_cursors.done OR excluded.done`,
          [drainId, moves.map((m) => m.taskId), moves.map((m) => m.seq), moves.map((m) => m.done)],
        );
      }
      await db.query(
        `UPDATE log_drains
            SET delivered_lines = delivered_lines + $2,
                dropped_lines = dropped_lines + $3,
                failures = CASE WHEN $4::text IS NULL THEN 0 ELSE failures + 1 END,
                retry_at = $5,
                last_error = CASE WHEN $4::text IS NULL THEN last_error ELSE $4 END
          WHERE id = $1`,
        [
          drainId,
          counts.delivered,
          counts.dropped,
          failure?.error ?? null,
          failure?.retryAt ?? null,
        ],
      );
    });
  }
}
