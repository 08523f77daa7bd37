import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { affected } from '@kiln/database';
import { Task } from '../task.entity';

/**
 * The SQL of task delivery: the `enqueued_at` stamp that says a task's job is in Redis, and the
 * queued tasks the reconciler looks for. {@link TaskDelivery} holds the decisions.
 */
@Injectable()
export class TaskStamps {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @InjectRepository(Task) private readonly tasks: Repository<Task>,
  ) {}

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

  /** Due queued tasks without a stamp, of codes that are not paused, oldest due first. */
  async unstamped(limit: number): Promise<Task[]> {
    return this.tasks
      .createQueryBuilder('t')
      .innerJoin('codes', 'c', 'c.id = t.code_id AND NOT c.paused')
      .where(`t.status = 'queued' AND t.enqueued_at IS NULL AND t.run_at <= now()`)
      .orderBy('t.run_at', 'ASC')
      .limit(limit)
      .getMany();
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
