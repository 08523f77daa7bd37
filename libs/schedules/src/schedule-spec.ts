import { LIMITS } from '@kiln/client';
import { FieldReader, JsonObject, KilnException, isPlainObject } from '@kiln/common';
import { MAX_DELAY_SECONDS, TaskLimits, readCluster } from '@kiln/tasks';
import type { Schedule } from './schedule.entity';
import { cronProblem, isTimeZone } from './timing';

export const MAX_SCHEDULES_PER_REQUEST = 100;
/** A minute to ten years (of 365 days), in seconds. */
export const [MIN_RUN_EVERY, MAX_RUN_EVERY] = LIMITS.runEvery;

/** A schedule as asked for (create), or the fields a `PUT` changes (update). */
export interface ScheduleSpec {
  codeName: string;
  payload: string;
  startAt: Date | undefined;
  runEvery: number | null;
  cron: string | null;
  timezone: string;
  endAt: Date | null;
  runTimes: number;
  priority: number | null;
  timeout: number | null;
  delay: number;
  taskDelay: number;
  cluster: string;
  label: string;
}

/** `{"schedules":[…]}`: all valid or the request is refused, naming the schedule and field. */
export function parseScheduleSpecs(body: JsonObject, limits: TaskLimits): ScheduleSpec[] {
  const schedules = body.schedules;
  if (!Array.isArray(schedules)) {
    throw KilnException.badRequest('schedules must be an array of schedule objects');
  }
  if (schedules.length === 0) {
    throw KilnException.badRequest('schedules must hold at least one schedule');
  }
  if (schedules.length > MAX_SCHEDULES_PER_REQUEST) {
    throw KilnException.badRequest(
      `at most ${MAX_SCHEDULES_PER_REQUEST} schedules can be created per request`,
    );
  }
  return schedules.map((item, index) => {
    if (!isPlainObject(item)) {
      throw KilnException.badRequest(`schedules[${index}] must be an object`);
    }
    return parseScheduleSpec(item, limits, `schedules[${index}].`);
  });
}

export function parseScheduleSpec(item: JsonObject, limits: TaskLimits, prefix = ''): ScheduleSpec {
  const read = new FieldReader(item, prefix);
  if (item.payload === undefined || item.payload === null) {
    throw KilnException.badRequest(`${prefix}payload is required`);
  }
  const payload = read.string('payload', limits.maxPayloadBytes) ?? '';
  const runEvery = read.int('run_every', { min: MIN_RUN_EVERY, max: MAX_RUN_EVERY }) ?? null;
  const cron = read.string('cron', 256)?.trim() || null;
  if (cron !== null) {
    const problem = cronProblem(cron);
    if (problem) throw KilnException.badRequest(`${prefix}${problem}`);
    if (runEvery !== null) {
      throw KilnException.badRequest(`${prefix}cron and run_every cannot both be set`);
    }
  }
  const timezone = read.string('timezone', 64) || 'UTC';
  if (!isTimeZone(timezone)) {
    throw KilnException.badRequest(`${prefix}timezone "${timezone}" is not an IANA time zone`);
  }
  const timeout = read.int('timeout', { min: 0, max: limits.maxTimeout }) ?? 0;
  const startAt = read.time('start_at');
  const endAt = read.time('end_at') ?? null;
  const cluster = readCluster(read);
  return {
    codeName: read.requiredString('code_name', 255),
    payload,
    startAt,
    runEvery,
    cron,
    timezone,
    endAt,
    runTimes: read.int('run_times', { min: 0, max: LIMITS.runTimes[1] }) ?? 0,
    priority: read.lenientInt('priority', ...LIMITS.priority) ?? null,
    timeout: timeout === 0 ? null : timeout,
    delay: read.int('delay', { min: 0, max: MAX_DELAY_SECONDS }) ?? 0,
    taskDelay: read.int('task_delay', { min: 0, max: MAX_DELAY_SECONDS }) ?? 0,
    cluster,
    label: read.string('label', 1024) ?? '',
  };
}

/** The schedule's settings in request form, for merging a partial `PUT` over them. */
function scheduleRequest(schedule: Schedule): Record<string, unknown> {
  return {
    code_name: schedule.codeName,
    payload: schedule.payload,
    start_at: schedule.startAt.toISOString(),
    run_every: schedule.runEvery,
    cron: schedule.cron,
    timezone: schedule.timezone,
    end_at: schedule.endAt?.toISOString() ?? null,
    run_times: schedule.runTimes,
    priority: schedule.priority,
    timeout: schedule.timeout,
    delay: schedule.delay,
    task_delay: schedule.taskDelay,
    cluster: schedule.cluster,
    label: schedule.label,
  };
}

/**
 * A partial `PUT`: the fields given replace the schedule's, the rest stay, and setting one timing
 * style (`cron` or `run_every`) clears the other. Returns the whole request to parse again, so an
 * update is checked exactly as a create is.
 */
export function mergeScheduleUpdate(
  current: Schedule,
  changes: Record<string, unknown>,
): Record<string, unknown> {
  const merged = { ...scheduleRequest(current), ...changes };
  if (changes.cron !== undefined && changes.run_every === undefined) merged.run_every = null;
  if (changes.run_every !== undefined && changes.cron === undefined) merged.cron = null;
  return merged;
}
