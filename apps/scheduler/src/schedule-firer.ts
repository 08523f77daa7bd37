import { Inject, Injectable, Logger } from '@nestjs/common';
import { newId } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { KilnMetrics } from '@kiln/metrics';
import { mayQueueTo } from '@kiln/projects';
import {
  FiringCode,
  FiringPlan,
  Schedule,
  ScheduleAdvance,
  ScheduleStore,
  nextRun,
} from '@kiln/schedules';
import { Task, TaskDelivery } from '@kiln/tasks';
import { LeaderLease } from './leader-lease';

const BATCH = 1000;

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
    private readonly store: ScheduleStore,
    private readonly lease: LeaderLease,
    private readonly delivery: TaskDelivery,
    private readonly metrics: KilnMetrics,
  ) {}

  /** Fires everything due now; returns how many tasks were queued. */
  async fireDue(): Promise<number> {
    let total = 0;
    for (;;) {
      const { due, fired } = await this.store.fireBatch(
        BATCH,
        (manager) => this.lease.fence(manager),
        (schedules, codes, now) => this.plan(schedules, codes, now),
      );
      total += fired.length;
      if (fired.length > 0 && this.metrics.enabled) {
        this.metrics.scheduleFires.inc(fired.length);
        this.metrics.tasksQueuedBatch(fired, 'schedule');
      }
      // Hand the due ones to Redis now; the reconciler would also do it on its next pass.
      await this.delivery.enqueueDue(fired.filter((task) => task.delay === 0));
      if (due < BATCH) break;
    }
    if (total > 0) this.logger.log(`fired ${total} scheduled tasks`);
    return total;
  }

  /** Each due schedule's task (unless its code is paused or gone) and its next instant. */
  private plan(schedules: Schedule[], codes: Map<string, FiringCode>, now: Date): FiringPlan {
    const tasks: Task[] = [];
    const advances = schedules.map((schedule): ScheduleAdvance => {
      const instant = schedule.nextStart!;
      const code = codes.get(`${schedule.projectId}/${schedule.codeName}`);
      // A paused or deleted code does not pile up tasks, nor does a cluster the operator revoked
      // since the schedule was made: the instant passes without one.
      const granted = code !== undefined && mayQueueTo(schedule.cluster, code.clusters);
      const fire = code !== undefined && !code.paused && granted;
      if (fire) tasks.push(this.taskFor(schedule, code, instant, now));
      const runCount = schedule.runCount + (fire ? 1 : 0);
      const next = nextRun(schedule, instant, runCount, now);
      const maxed = schedule.runTimes > 0 && runCount >= schedule.runTimes;
      return {
        id: schedule.id,
        next_start: next,
        run_count: runCount,
        error_count: schedule.errorCount + (code && granted ? 0 : 1),
        last_run_time: fire ? now : schedule.lastRunTime,
        status: next ? 'scheduled' : 'complete',
        msg: next
          ? !code
            ? `Code "${schedule.codeName}" not found: a run was skipped`
            : !granted
              ? `Cluster "${schedule.cluster}" is not granted to this project: a run was skipped`
              : code.paused
                ? 'Code paused: a run was skipped'
                : ''
          : maxed
            ? 'Ran max times.'
            : 'Ended',
      };
    });
    return { tasks, advances };
  }

  private taskFor(schedule: Schedule, code: FiringCode, instant: Date, now: Date): Task {
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
