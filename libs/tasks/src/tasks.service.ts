import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { KilnException, newId } from '@kiln/common';
import { Code, CodesService } from '@kiln/codes';
import { TaskSignals } from '@kiln/redis';
import { Task } from './task.entity';
import { rowsOf } from '@kiln/database';
import { retryOf } from './task-lifecycle';
import { NewTaskCode, NewTaskRow, insertNewTasks, insertTasks } from './task-record';
import { TaskSpec } from './task-spec';
import { TASK_STATUSES, TaskStatus } from './task-status';
import { QueuedTask, TaskDelivery } from './task-delivery';
import { sqlFrom } from './task-transitions';

const CANCEL_FROM = sqlFrom('cancelled', 'api', 't.status');

export interface TaskListQuery {
  statuses: TaskStatus[];
  codeName?: string;
  label?: string;
  cluster?: string;
  fromTime?: Date;
  toTime?: Date;
  page: number;
  perPage: number;
}

@Injectable()
export class TasksService {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @InjectRepository(Task) private readonly tasks: Repository<Task>,
    private readonly codes: CodesService,
    private readonly signals: TaskSignals,
    private readonly delivery: TaskDelivery,
  ) {}

  /**
   * Queues tasks all-or-nothing: the rows are inserted by one statement (each pinned to its code's
   * current revision), then the due ones are handed to Redis. A task whose enqueue fails is still
   * accepted; the reconciler enqueues it. Returns the new tasks' ids, in order.
   *
   * This is the API's hot path (docs/benchmarks.md, ingest): each task goes to Postgres as a
   * short `NewTaskRow`, and what tasks share (project, codes, time) is sent once per request.
   */
  async create(projectId: string, specs: TaskSpec[]): Promise<string[]> {
    const codes: Code[] = [];
    const codeIndex = new Map<string, number>();
    for (const spec of specs) {
      if (codeIndex.has(spec.codeName)) continue;
      const code = await this.codes.findByNameForQueueing(projectId, spec.codeName);
      if (!code) throw KilnException.notFound(`Code "${spec.codeName}" not found`);
      codeIndex.set(spec.codeName, codes.length);
      codes.push(code);
    }
    const now = new Date();
    const ids: string[] = [];
    const rows: NewTaskRow[] = [];
    const due: QueuedTask[] = [];
    for (const spec of specs) {
      const k = codeIndex.get(spec.codeName)!;
      const id = newId(now);
      ids.push(id);
      const row: NewTaskRow = { i: id, p: spec.payload, t: spec.timeout };
      if (spec.priority !== undefined) row.r = spec.priority;
      if (spec.delay !== 0) row.d = spec.delay;
      if (spec.cluster !== 'default') row.c = spec.cluster;
      if (spec.label !== '') row.l = spec.label;
      if (spec.webhook !== null) row.w = spec.webhook;
      if (k !== 0) row.k = k;
      rows.push(row);
      if (spec.delay === 0) {
        const priority = spec.priority ?? codes[k].defaultPriority;
        due.push({ id, projectId, cluster: spec.cluster, priority });
      }
    }
    const taskCodes: NewTaskCode[] = codes.map((code) => ({
      id: code.id,
      latestRevisionId: code.latestRevisionId,
      name: code.name,
      rev: code.rev,
      defaultPriority: code.defaultPriority,
    }));
    await insertNewTasks(this.dataSource, projectId, now, rows, taskCodes);
    await this.delivery.enqueueDue(due, { stamped: true });
    return ids;
  }

  async get(projectId: string, id: string): Promise<Task> {
    const task = await this.tasks.findOneBy({ projectId, id });
    if (!task) throw KilnException.notFound('Task not found');
    return task;
  }

  async list(projectId: string, query: TaskListQuery): Promise<Task[]> {
    const qb = this.tasks
      .createQueryBuilder('t')
      .where('t.project_id = :projectId', { projectId })
      .orderBy('t.created_at', 'DESC')
      .addOrderBy('t.id', 'DESC')
      .offset(query.page * query.perPage)
      .limit(query.perPage);
    if (query.statuses.length > 0) {
      qb.andWhere('t.status IN (:...statuses)', { statuses: query.statuses });
    }
    if (query.codeName !== undefined) {
      qb.andWhere('t.code_name = :codeName', { codeName: query.codeName });
    }
    if (query.label !== undefined) qb.andWhere('t.label = :label', { label: query.label });
    if (query.cluster !== undefined) {
      qb.andWhere('t.cluster = :cluster', { cluster: query.cluster });
    }
    if (query.fromTime) qb.andWhere('t.created_at >= :fromTime', { fromTime: query.fromTime });
    if (query.toTime) qb.andWhere('t.created_at <= :toTime', { toTime: query.toTime });
    return qb.getMany();
  }

  /**
   * Cancels a task that has not ended: a queued or delayed one never runs; a running one is
   * `cancelled` at once and its worker is told to kill the container. A task that already ended
   * is left as it is (IronWorker's clients cancel whole lists without looking).
   */
  async cancel(projectId: string, id: string): Promise<void> {
    await this.get(projectId, id);
    await this.cancelWhere('t.id = $1 AND t.project_id = $2', [id, projectId]);
  }

  /** Cancels every task of a code that has not ended (`POST …/codes/{id}/cancel_all`). */
  async cancelAll(projectId: string, codeId: string): Promise<number> {
    return this.cancelWhere('t.code_id = $1 AND t.project_id = $2', [codeId, projectId]);
  }

  private async cancelWhere(condition: string, params: unknown[]): Promise<number> {
    const rows = rowsOf<{ id: string; was: TaskStatus }>(
      await this.dataSource.query(
        `UPDATE tasks t
            SET status = 'cancelled', msg = 'Cancelled', end_time = now(), updated_at = now(),
                heartbeat_at = NULL
           FROM (SELECT id, status FROM tasks t
                  WHERE ${condition} AND ${CANCEL_FROM}
                  FOR UPDATE) was
          WHERE t.id = was.id
          RETURNING t.id, was.status AS was`,
        params,
      ),
    );
    await this.signals.cancelled(rows.filter((row) => row.was !== 'queued').map((row) => row.id));
    return rows.length;
  }

  /** Sets `percent` and `msg` of a task that has not ended; an ended task is left as it is. */
  async setProgress(
    projectId: string,
    id: string,
    percent: number | undefined,
    msg: string | undefined,
  ): Promise<void> {
    await this.get(projectId, id);
    await this.dataSource.query(
      `UPDATE tasks SET percent = coalesce($3, percent), msg = coalesce($4, msg), updated_at = now()
        WHERE id = $1 AND project_id = $2 AND status IN ('queued', 'preparing', 'running')`,
      [id, projectId, percent ?? null, msg ?? null],
    );
  }

  /** Queues a new task running `id` again (same code revision and payload), linked by `original_task_id`. */
  async retry(projectId: string, id: string, delaySeconds: number): Promise<Task> {
    const original = await this.get(projectId, id);
    const retry = retryOf(original, delaySeconds);
    await this.dataSource.transaction(async (manager) => {
      await insertTasks(manager, [retry]);
      await manager.update(Task, { id: original.id }, { retryTaskId: retry.id });
    });
    if (delaySeconds === 0) await this.delivery.enqueueDue([retry]);
    return retry;
  }

  /** Task counts per status for a code, over tasks created in [from, to]. */
  async statsOfCode(codeId: string, from: Date, to: Date): Promise<Record<TaskStatus, number>> {
    const rows = await this.dataSource.query<{ status: TaskStatus; n: number }[]>(
      `SELECT status, count(*)::int AS n FROM tasks
        WHERE code_id = $1 AND created_at >= $2 AND created_at <= $3
        GROUP BY status`,
      [codeId, from, to],
    );
    const stats = Object.fromEntries(TASK_STATUSES.map((status) => [status, 0])) as Record<
      TaskStatus,
      number
    >;
    for (const row of rows) stats[row.status] = row.n;
    return stats;
  }
}
