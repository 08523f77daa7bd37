import { Inject, Injectable } from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { affected } from '@kiln/database';
import { Task } from '../task.entity';

/** What enqueueing a task needs to know of it. */
export type QueuedTask = Pick<Task, 'id' | 'projectId' | 'cluster' | 'priority'>;

/**
 * The SQL of task delivery: the `enqueued_at` stamp that says a task's job is in Redis, and the
 * queued tasks the reconciler looks for. {@link TaskDelivery} holds the decisions.
 */
@Injectable()
export class TaskStamps {
  /** The operator's limit on a project's running tasks, for projects without their own. */
  private readonly projectMaxRunning: number | null;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @InjectRepository(Task) private readonly tasks: Repository<Task>,
    @Inject(KILN_CONFIG) config: KilnConfig,
  ) {
    this.projectMaxRunning = config.tasks.projectMaxRunning || null;
  }

  /** Stamps those of `ids` still queued as handed to Redis. */
  async stamp(ids: string[]): Promise<void> {
    await this.dataSource.query(
      `UPDATE tasks SET enqueued_at = now() WHERE id = ANY($1) AND status = 'queued'`,
      [ids],
    );
  }

  /** Clears the stamp of those of `ids` still queued; returns how many it cleared. */
  async unstamp(ids: string[]): Promise<number> {
    return affected(
      await this.dataSource.query(
        `UPDATE tasks SET enqueued_at = NULL WHERE id = ANY($1) AND status = 'queued'`,
        [ids],
      ),
    );
  }

  /** Clears every queued task's stamp; returns how many. */
  async unstampAll(): Promise<number> {
    return affected(
      await this.dataSource.query(
        `UPDATE tasks SET enqueued_at = NULL WHERE status = 'queued' AND enqueued_at IS NOT NULL`,
      ),
    );
  }

  /**
   * Due queued tasks without a stamp, of codes that are not paused, oldest due first; of a project
   * with a `max_running`, at most that many per cluster in one answer. So a limited project's
   * backlog is handed to Redis a slot's worth at a time, not whole every second (its tasks over
   * the limit are parked by the take, due again a second later).
   */
  async unstamped(limit: number): Promise<QueuedTask[]> {
    const rows = await this.dataSource.query<
      { id: string; project_id: string; cluster: string; priority: number }[]
    >(
      `SELECT id, project_id, cluster, priority FROM (
         SELECT t.id, t.project_id, t.cluster, t.priority, t.run_at,
                coalesce(p.max_running, $2) AS cap,
                row_number() OVER (PARTITION BY t.project_id, t.cluster ORDER BY t.run_at) AS nth
           FROM tasks t
           JOIN codes c ON c.id = t.code_id AND NOT c.paused
           JOIN projects p ON p.id = t.project_id
          WHERE t.status = 'queued' AND t.enqueued_at IS NULL AND t.run_at <= now()
       ) due
        WHERE cap IS NULL OR nth <= cap
        ORDER BY run_at
        LIMIT $1`,
      [limit, this.projectMaxRunning],
    );
    return rows.map((row) => ({
      id: row.id,
      projectId: row.project_id,
      cluster: row.cluster,
      priority: row.priority,
    }));
  }

  /**
   * Queued tasks stamped between 2 minutes and 10 seconds ago, of codes that are not paused,
   * oldest stamp first: those whose job should be in Redis by now.
   */
  async recentlyStamped(limit: number): Promise<Task[]> {
    return this.tasks
      .createQueryBuilder('t')
      .innerJoin('codes', 'c', 'c.id = t.code_id AND NOT c.paused')
      .where(`t.status = 'queued' AND t.enqueued_at < now() - interval '10 seconds'`)
      .andWhere(`t.enqueued_at > now() - interval '2 minutes'`)
      .orderBy('t.enqueued_at', 'ASC')
      .limit(limit)
      .getMany();
  }
}
