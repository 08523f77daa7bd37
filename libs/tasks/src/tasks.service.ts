import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, In, Repository } from 'typeorm';
import { KilnException, newId } from '@kiln/common';
import { Code, CodesService } from '@kiln/codes';
import { TaskQueues, TaskPriority } from '@kiln/queue';
import { Task } from './task.entity';
import { TaskSpec } from './task-spec';
import { TaskStatus } from './task-status';

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
  private readonly logger = new Logger(TasksService.name);

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @InjectRepository(Task) private readonly tasks: Repository<Task>,
    private readonly codes: CodesService,
    private readonly queues: TaskQueues,
  ) {}

  /**
   * Queues tasks all-or-nothing: the rows are committed in one transaction (each pinned to its
   * code's current revision), then the due ones are handed to Redis. A task whose enqueue fails
   * is still accepted; the reconciler enqueues it.
   */
  async create(projectId: string, specs: TaskSpec[]): Promise<Task[]> {
    const codes = new Map<string, Code>();
    for (const name of new Set(specs.map((spec) => spec.codeName))) {
      const code = await this.codes.findByName(projectId, name);
      if (!code) throw KilnException.notFound(`Code "${name}" not found`);
      codes.set(name, code);
    }
    const now = new Date();
    const rows = specs.map((spec) => {
      const code = codes.get(spec.codeName)!;
      return this.tasks.create({
        id: newId(now),
        projectId,
        codeId: code.id,
        codeRevisionId: code.latestRevisionId,
        codeName: code.name,
        codeRev: code.rev,
        status: 'queued',
        priority: spec.priority ?? code.defaultPriority,
        payload: spec.payload,
        timeout: spec.timeout,
        delay: spec.delay,
        cluster: spec.cluster,
        label: spec.label,
        runAt: new Date(now.getTime() + spec.delay * 1000),
        createdAt: now,
        updatedAt: now,
      });
    });
    await this.dataSource.transaction((manager) => manager.insert(Task, rows));
    await this.enqueueDue(rows.filter((task) => task.delay === 0));
    return rows;
  }

  /** Hands tasks to Redis and records that it happened; failures are left to the reconciler. */
  async enqueueDue(tasks: Task[]): Promise<void> {
    const enqueued: string[] = [];
    for (const task of tasks) {
      try {
        await this.queues.enqueue({
          taskId: task.id,
          projectId: task.projectId,
          cluster: task.cluster,
          priority: task.priority as TaskPriority,
        });
        enqueued.push(task.id);
      } catch (error) {
        this.logger.warn(`task ${task.id} left for the reconciler: ${(error as Error).message}`);
        break;
      }
    }
    if (enqueued.length > 0) {
      await this.tasks.update(
        { id: In(enqueued), status: 'queued' },
        { enqueuedAt: () => 'now()' },
      );
    }
  }

  /**
   * Queued tasks that are due but not in Redis: delayed tasks whose time has come, tasks released
   * by a stopping worker, and tasks whose enqueue failed (tasks queued in the last few seconds are
   * still being enqueued by the API and are left alone). Oldest due first.
   */
  async findUnenqueued(limit: number): Promise<Task[]> {
    return this.tasks
      .createQueryBuilder('t')
      .where(`t.status = 'queued' AND t.enqueued_at IS NULL AND t.run_at <= now()`)
      .andWhere(`(t.delay > 0 OR t.updated_at < now() - interval '5 seconds')`)
      .orderBy('t.run_at', 'ASC')
      .limit(limit)
      .getMany();
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
    if (query.statuses.length > 0)
      qb.andWhere('t.status IN (:...statuses)', { statuses: query.statuses });
    if (query.codeName !== undefined)
      qb.andWhere('t.code_name = :codeName', { codeName: query.codeName });
    if (query.label !== undefined) qb.andWhere('t.label = :label', { label: query.label });
    if (query.cluster !== undefined)
      qb.andWhere('t.cluster = :cluster', { cluster: query.cluster });
    if (query.fromTime) qb.andWhere('t.created_at >= :fromTime', { fromTime: query.fromTime });
    if (query.toTime) qb.andWhere('t.created_at <= :toTime', { toTime: query.toTime });
    return qb.getMany();
  }
}
