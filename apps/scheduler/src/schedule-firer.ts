import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { newId } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { Schedule, nextRun } from '@kiln/schedules';
import { INSERT_TASKS_SQL, Task, TasksService, rowsOf, taskRecord } from '@kiln/tasks';
import { LeaderLease } from './leader-lease';

const BATCH = 1000;

interface CodeRow {
  id: string;
  project_id: string;
  name: string;
  latest_revision_id: string;
  rev: number;
  default_priority: number;
  paused: boolean;
}

/**
 * Turns due schedules into tasks. Each batch is one transaction that checks the leader's fence,
 * inserts the tasks (unique per schedule and instant: a second firing of the same instant inserts
 * nothing) and advances every schedule's `next_start`, so an instant is fired exactly once
 * whichever replica fires it and wherever it dies.
 */
@Injectable()
export class ScheduleFirer {
  private readonly logger = new Logger(ScheduleFirer.name);

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    @InjectDataSource() private readonly db: DataSource,
    private readonly lease: LeaderLease,
    private readonly tasks: TasksService,
  ) {}

  /** Fires everything due now; returns how many tasks were queued. */
  async fireDue(): Promise<number> {
    let total = 0;
    for (;;) {
      const { due, fired } = await this.db.transaction((manager) => this.fireBatch(manager));
      total += fired.length;
      // Hand the due ones to Redis now; the reconciler would also do it on its next pass.
      await this.tasks.enqueueDue(fired.filter((task) => task.delay === 0));
      if (due < BATCH) break;
    }
    if (total > 0) this.logger.log(`fired ${total} scheduled tasks`);
    return total;
  }

  private async fireBatch(manager: EntityManager): Promise<{ due: number; fired: Task[] }> {
    if (!(await this.lease.fence(manager))) return { due: 0, fired: [] };
    const schedules = await manager
      .getRepository(Schedule)
      .createQueryBuilder('s')
      .where(`s.status = 'scheduled' AND s.next_start <= now()`)
      .orderBy('s.next_start', 'ASC')
      .limit(BATCH)
      .setLock('pessimistic_write')
      .setOnLocked('skip_locked')
      .getMany();
    if (schedules.length === 0) return { due: 0, fired: [] };
    const [{ now }] = await manager.query<{ now: Date }[]>(`SELECT now() AS now`);
    const codes = await this.codesOf(manager, schedules);
    const tasks: Task[] = [];
    const updates = schedules.map((schedule) => {
      const instant = schedule.nextStart!;
      const code = codes.get(`${schedule.projectId}/${schedule.codeName}`);
      // A paused or deleted code does not pile up tasks: the instant passes without one.
      const fire = code !== undefined && !code.paused;
      if (fire) tasks.push(this.taskFor(schedule, code, instant, now));
      const runCount = schedule.runCount + (fire ? 1 : 0);
      const next = nextRun(schedule, instant, runCount, now);
      const maxed = schedule.runTimes > 0 && runCount >= schedule.runTimes;
      return {
        id: schedule.id,
        next_start: next,
        run_count: runCount,
        error_count: schedule.errorCount + (code ? 0 : 1),
        last_run_time: fire ? now : schedule.lastRunTime,
        status: next ? 'scheduled' : 'complete',
        msg: next
          ? code
            ? code.paused
              ? 'Code paused: a run was skipped'
              : ''
            : `Code "${schedule.codeName}" not found: a run was skipped`
          : maxed
            ? 'Ran max times.'
            : 'Ended',
      };
    });
    const inserted = new Set(
      rowsOf<{ id: string }>(
        await manager.query(`${INSERT_TASKS_SQL} ON CONFLICT DO NOTHING RETURNING id`, [
          JSON.stringify(tasks.map(taskRecord)),
        ]),
      ).map((row) => row.id),
    );
    await manager.query(
      `UPDATE schedules s
          SET next_start = u.next_start, run_count = u.run_count, error_count = u.error_count,
              last_run_time = u.last_run_time, status = u.status, msg = u.msg, updated_at = now()
         FROM json_populate_recordset(null::schedules, $1) u
        WHERE s.id = u.id`,
      [JSON.stringify(updates)],
    );
    return { due: schedules.length, fired: tasks.filter((task) => inserted.has(task.id)) };
  }

  private async codesOf(
    manager: EntityManager,
    schedules: Schedule[],
  ): Promise<Map<string, CodeRow>> {
    const rows = await manager.query<CodeRow[]>(
      `SELECT c.id, c.project_id, c.name, c.latest_revision_id, c.rev, c.default_priority, c.paused
         FROM codes c
         JOIN unnest($1::text[], $2::text[]) AS wanted(project_id, name)
           ON c.project_id = wanted.project_id AND c.name = wanted.name
        WHERE c.deleted_at IS NULL`,
      [schedules.map((s) => s.projectId), schedules.map((s) => s.codeName)],
    );
    return new Map(rows.map((row) => [`${row.project_id}/${row.name}`, row]));
  }

  private taskFor(schedule: Schedule, code: CodeRow, instant: Date, now: Date): Task {
    return Object.assign(new Task(), {
      id: newId(now),
      projectId: schedule.projectId,
      codeId: code.id,
      codeRevisionId: code.latest_revision_id,
      codeName: code.name,
      codeRev: code.rev,
      status: 'queued' as const,
      priority: schedule.priority ?? code.default_priority,
      payload: schedule.payload,
      timeout: schedule.timeout ?? this.config.tasks.defaultTimeout,
      delay: schedule.taskDelay,
      cluster: schedule.cluster,
      label: schedule.label,
      runAt: new Date(now.getTime() + schedule.taskDelay * 1000),
      createdAt: now,
      updatedAt: now,
      scheduleId: schedule.id,
      scheduledFor: instant,
    });
  }
}
