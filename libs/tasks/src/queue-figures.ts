import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { rowsOf } from '@kiln/database';

/** Due queued tasks of one (cluster, priority): how many, and how long the oldest has waited. */
export interface QueueFigure {
  cluster: string;
  priority: number;
  depth: number;
  oldestSeconds: number;
}

/**
 * What waits to run, read from Postgres (the truth: Redis holds only the tasks handed to it, not
 * the parked or not yet enqueued ones): queued tasks that are due, of codes not paused. One
 * grouped read over `tasks_live_idx`; the scheduler's leader runs it at most every few seconds,
 * when scraped (`kiln_queue_depth`, `kiln_queue_oldest_age_seconds`).
 */
@Injectable()
export class QueueFigures {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  async read(): Promise<QueueFigure[]> {
    return rowsOf<QueueFigure>(
      await this.db.query(
        `SELECT t.cluster, t.priority::int AS priority, count(*)::int AS depth,
                greatest(extract(epoch FROM now() - min(t.run_at)), 0)::float8 AS "oldestSeconds"
           FROM tasks t JOIN codes c ON c.id = t.code_id
          WHERE t.status = 'queued' AND t.run_at <= now() AND NOT c.paused
          GROUP BY t.cluster, t.priority`,
      ),
    );
  }
}
