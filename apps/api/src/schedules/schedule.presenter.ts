import { formatTime } from '@kiln/common';
import type { Schedule } from '@kiln/schedules';

/** IronWorker's schedule object (ints where Go decodes ints, zero time for unset dates), plus `cron` and `timezone`. */
export function scheduleJson(schedule: Schedule) {
  return {
    id: schedule.id,
    project_id: schedule.projectId,
    code_name: schedule.codeName,
    payload: schedule.payload,
    status: schedule.status,
    msg: schedule.msg,
    created_at: formatTime(schedule.createdAt),
    updated_at: formatTime(schedule.updatedAt),
    start_at: formatTime(schedule.startAt),
    end_at: formatTime(schedule.endAt),
    next_start: formatTime(schedule.nextStart),
    last_run_time: formatTime(schedule.lastRunTime),
    run_every: schedule.runEvery ?? 0,
    run_times: schedule.runTimes,
    run_count: schedule.runCount,
    error_count: schedule.errorCount,
    priority: schedule.priority ?? 0,
    timeout: schedule.timeout ?? 0,
    delay: schedule.delay,
    task_delay: schedule.taskDelay,
    cluster: schedule.cluster,
    label: schedule.label,
    max_concurrency: 0,
    ...(schedule.cron ? { cron: schedule.cron, timezone: schedule.timezone } : {}),
  };
}
