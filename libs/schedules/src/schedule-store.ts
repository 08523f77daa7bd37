import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { markTrace } from '@kiln/common';
import { Task, insertTasks, newTasksOf } from '@kiln/tasks';
import { Schedule } from './schedule.entity';

/** What firing a schedule needs of its code. */
export interface FiringCode {
  id: string;
  project_id: string;
  name: string;
  latest_revision_id: string;
  rev: number;
  default_priority: number;
  paused: boolean;
  /** The clusters other than `default` the code's project was granted. */
  clusters: ReadonlySet<string>;
}

/** A schedule's state after a firing. */
export interface ScheduleAdvance {
  id: string;
  next_start: Date | null;
  run_count: number;
  error_count: number;
  last_run_time: Date | null;
  status: 'scheduled' | 'complete';
  msg: string;
}

/** What the firer decides for a batch of due schedules. */
export interface FiringPlan {
  tasks: Task[];
  advances: ScheduleAdvance[];
}

export interface FiringBatch {
  /** Due schedules found (a full batch means more may be due). */
  due: number;
  /** The tasks inserted (an instant already fired inserts nothing). */
  fired: Task[];
}

/**
 * The SQL of firing schedules. A batch is one transaction: `fenced` checks the caller still leads
 * (inside the transaction), the due schedules are locked (`SKIP LOCKED`), `plan` decides their
 * tasks and next instants, and the tasks and the schedules' new state are written together, so
 * an instant is fired exactly once whoever fires it and wherever it dies.
 */
@Injectable()
export class ScheduleStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  async fireBatch(
    limit: number,
    fenced: (manager: EntityManager) => Promise<boolean>,
    plan: (due: Schedule[], codes: Map<string, FiringCode>, now: Date) => FiringPlan,
  ): Promise<FiringBatch> {
    return this.db.transaction(async (manager) => {
      if (!(await fenced(manager))) return { due: 0, fired: [] };
      const schedules = await manager
        .getRepository(Schedule)
        .createQueryBuilder('s')
        .where(`s.status = 'scheduled' AND s.next_start <= now()`)
        .orderBy('s.next_start', 'ASC')
        .limit(limit)
        .setLock('pessimistic_write')
        .setOnLocked('skip_locked')
        .getMany();
      if (schedules.length === 0) return { due: 0, fired: [] };
      const [{ now }] = await manager.query<{ now: Date }[]>(`SELECT now() AS now`);
      const { tasks, advances } = plan(schedules, await this.codesOf(manager, schedules), now);
      for (const task of tasks) {
        // Each fired task's trace starts at its schedule's fire (docs/operations.md, "Traces").
        task.traceparent ??=
          markTrace('kiln.schedule.fire', {
            'kiln.schedule_id': task.scheduleId ?? '',
            'kiln.project_id': task.projectId,
            'kiln.code': task.codeName,
            'kiln.task_id': task.id,
          }) ?? null;
      }
      const inserted = await insertTasks(manager, newTasksOf(tasks, now));
      await manager.query(
        `UPDATE schedules s
            SET next_start = u.next_start, run_count = u.run_count, error_count = u.error_count,
                last_run_time = u.last_run_time, status = u.status, msg = u.msg, updated_at = now()
           FROM json_populate_recordset(null::schedules, $1) u
          WHERE s.id = u.id`,
        [JSON.stringify(advances)],
      );
      return { due: schedules.length, fired: tasks.filter((task) => inserted.has(task.id)) };
    });
  }

  /** The live codes the schedules name, by `<project id>/<code name>`. */
  private async codesOf(
    manager: EntityManager,
    schedules: Schedule[],
  ): Promise<Map<string, FiringCode>> {
    const rows = await manager.query<(Omit<FiringCode, 'clusters'> & { clusters: string[] })[]>(
      `SELECT c.id, c.project_id, c.name, c.latest_revision_id, c.rev, c.default_priority, c.paused,
              ARRAY(SELECT g.cluster FROM project_clusters g WHERE g.project_id = c.project_id)
                AS clusters
         FROM codes c
         JOIN unnest($1::text[], $2::text[]) AS wanted(project_id, name)
           ON c.project_id = wanted.project_id AND c.name = wanted.name
        WHERE c.deleted_at IS NULL`,
      [schedules.map((s) => s.projectId), schedules.map((s) => s.codeName)],
    );
    return new Map(
      rows.map((row) => [
        `${row.project_id}/${row.name}`,
        { ...row, clusters: new Set(row.clusters) },
      ]),
    );
  }
}
