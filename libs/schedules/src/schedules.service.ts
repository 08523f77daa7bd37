import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { KilnException, newId } from '@kiln/common';
import { CodesService } from '@kiln/codes';
import { ProjectLimits, checkQuota } from '@kiln/projects';
import { Schedule } from './schedule.entity';
import { ScheduleSpec } from './schedule-spec';
import { firstRun } from './timing';

@Injectable()
export class SchedulesService {
  constructor(
    @InjectRepository(Schedule) private readonly schedules: Repository<Schedule>,
    private readonly codes: CodesService,
    private readonly limits: ProjectLimits,
  ) {}

  /**
   * Creates schedules all-or-nothing: each code must exist (404), each cluster be granted (403),
   * and the project's live schedules stay within its quota (429).
   */
  async create(projectId: string, specs: ScheduleSpec[]): Promise<Schedule[]> {
    for (const name of new Set(specs.map((spec) => spec.codeName))) {
      if (!(await this.codes.findByName(projectId, name))) {
        throw KilnException.notFound(`Code "${name}" not found`);
      }
    }
    await this.limits.checkClusters(
      projectId,
      specs.map((spec) => spec.cluster),
    );
    const live = await this.schedules.countBy({ projectId, status: 'scheduled' });
    checkQuota('schedules', await this.limits.quota(projectId, 'schedules'), live, specs.length);
    const now = new Date();
    const rows = specs.map((spec) => {
      const schedule = this.schedules.create({
        id: newId(now),
        projectId,
        ...fieldsOf(spec),
        startAt: spec.startAt ?? new Date(now.getTime() + spec.delay * 1000),
        status: 'scheduled',
        msg: '',
        runCount: 0,
        errorCount: 0,
        lastRunTime: null,
        createdAt: now,
        updatedAt: now,
      });
      return withNextStart(schedule);
    });
    await this.schedules.insert(rows);
    return rows;
  }

  async get(projectId: string, id: string): Promise<Schedule> {
    const schedule = await this.schedules.findOneBy({ projectId, id });
    if (!schedule) throw KilnException.notFound('Schedule not found');
    return schedule;
  }

  async list(projectId: string, page: number, perPage: number): Promise<Schedule[]> {
    return this.schedules.find({
      where: { projectId },
      order: { createdAt: 'DESC', id: 'DESC' },
      skip: page * perPage,
      take: perPage,
    });
  }

  /** Stops a schedule for good; the tasks it already queued are left alone. */
  async cancel(projectId: string, id: string): Promise<void> {
    await this.get(projectId, id);
    await this.schedules.update(
      { projectId, id, status: 'scheduled' },
      { status: 'cancelled', msg: 'Cancelled', nextStart: null, updatedAt: () => 'now()' },
    );
  }

  /**
   * Changes a live schedule: the fields given replace the old ones (`spec` was parsed from the
   * merge of both), and the next run is computed again from the new timing.
   */
  async update(projectId: string, id: string, spec: ScheduleSpec): Promise<Schedule> {
    const schedule = await this.get(projectId, id);
    if (schedule.status !== 'scheduled') {
      throw KilnException.badRequest(`schedule is ${schedule.status} and can no longer be updated`);
    }
    if (!(await this.codes.findByName(projectId, spec.codeName))) {
      throw KilnException.notFound(`Code "${spec.codeName}" not found`);
    }
    await this.limits.checkClusters(projectId, [spec.cluster]);
    Object.assign(schedule, fieldsOf(spec), {
      startAt: spec.startAt ?? schedule.startAt,
      updatedAt: new Date(),
    });
    withNextStart(schedule, schedule.lastRunTime ?? undefined);
    await this.schedules.save(schedule);
    return schedule;
  }
}

function fieldsOf(spec: ScheduleSpec): Partial<Schedule> {
  return {
    codeName: spec.codeName,
    payload: spec.payload,
    runEvery: spec.runEvery,
    cron: spec.cron,
    timezone: spec.timezone,
    endAt: spec.endAt,
    runTimes: spec.runTimes,
    priority: spec.priority,
    timeout: spec.timeout,
    delay: spec.delay,
    taskDelay: spec.taskDelay,
    cluster: spec.cluster,
    label: spec.label,
  };
}

/** Sets `next_start` (and completes a schedule whose first run is already past its end). */
function withNextStart(schedule: Schedule, after?: Date): Schedule {
  const from =
    after && after > schedule.startAt ? new Date(after.getTime() + 1000) : schedule.startAt;
  const next =
    schedule.runTimes > 0 && schedule.runCount >= schedule.runTimes
      ? null
      : firstRun({ ...schedule, startAt: from });
  schedule.nextStart = next;
  if (!next) {
    schedule.status = 'complete';
    schedule.msg =
      schedule.runCount >= schedule.runTimes && schedule.runTimes > 0 ? 'Ran max times.' : 'Ended';
  }
  return schedule;
}
