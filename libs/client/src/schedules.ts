import { Transport } from './http';
import { compact, paged } from './paging';
import { Message, QueuedSchedule, Schedule, ScheduleOptions } from './types';

/** Recurring tasks, IronWorker's `run_every` or Kiln's `cron` + `timezone`: `kiln.schedules`. */
export class Schedules {
  constructor(
    private readonly http: Transport,
    private readonly base: string,
  ) {}

  /**
   * Schedules tasks of `codeName` with `payload` (a string as is, anything else as JSON).
   * @example await kiln.schedules.create('report', {}, { cron: '0 9 * * 1-5', timezone: 'Europe/Paris' });
   */
  async create(
    codeName: string,
    payload: unknown,
    options: ScheduleOptions,
  ): Promise<QueuedSchedule> {
    const answer = await this.http.json<{ schedules: QueuedSchedule[] }>({
      method: 'POST',
      path: `${this.base}/schedules`,
      json: {
        schedules: [
          { code_name: codeName, payload: payloadText(payload), ...scheduleBody(options) },
        ],
      },
      idempotent: false,
    });
    return { id: answer.schedules[0].id };
  }

  /** Every schedule of the project, a page at a time. */
  async *list(): AsyncGenerator<Schedule> {
    yield* paged(async (page) => {
      const { schedules } = await this.http.json<{ schedules: Schedule[] }>({
        method: 'GET',
        path: `${this.base}/schedules`,
        query: { page, per_page: 100 },
        idempotent: true,
      });
      return schedules;
    }, 100);
  }

  async get(id: string): Promise<Schedule> {
    return this.http.json<Schedule>({
      method: 'GET',
      path: `${this.base}/schedules/${encodeURIComponent(id)}`,
      idempotent: true,
    });
  }

  /** Changes the given settings (and `payload`, when given); the others stay. */
  async update(id: string, changes: ScheduleOptions & { payload?: unknown }): Promise<Message> {
    const { payload, ...options } = changes;
    return this.http.json<Message>({
      method: 'PUT',
      path: `${this.base}/schedules/${encodeURIComponent(id)}`,
      json: {
        ...scheduleBody(options),
        ...(payload === undefined ? {} : { payload: payloadText(payload) }),
      },
      idempotent: true,
    });
  }

  async cancel(id: string): Promise<Message> {
    return this.http.json<Message>({
      method: 'POST',
      path: `${this.base}/schedules/${encodeURIComponent(id)}/cancel`,
      idempotent: true,
    });
  }
}

function payloadText(payload: unknown): string {
  return typeof payload === 'string' ? payload : JSON.stringify(payload ?? {});
}

/** RFC3339; an Invalid Date is sent as it prints, for the API to refuse with a 400 naming the field. */
function time(value: Date | string | undefined): string | undefined {
  if (!(value instanceof Date)) return value;
  return Number.isNaN(value.getTime()) ? String(value) : value.toISOString();
}

function scheduleBody(options: ScheduleOptions): Record<string, unknown> {
  return compact({
    run_every: options.runEvery,
    cron: options.cron,
    timezone: options.timezone,
    start_at: time(options.startAt),
    end_at: time(options.endAt),
    run_times: options.runTimes,
    priority: options.priority,
    timeout: options.timeout,
    delay: options.delay,
    task_delay: options.taskDelay,
    cluster: options.cluster,
    label: options.label,
  });
}
