import { KilnError, KilnTimeoutError } from './errors';
import { Transport, sleep } from './http';
import { paged } from './paging';
import { lines, sseEvents } from './streams';
import {
  BulkCancelResult,
  BulkRetryResult,
  DeliveryFilter,
  FinalTaskStatus,
  PageOptions,
  ProjectStats,
  TaskPage,
  TaskSelection,
  WebhookDelivery,
  FollowOptions,
  LogEvent,
  Message,
  NewTask,
  QueuedTask,
  RunResult,
  Task,
  TaskFilter,
  TaskOptions,
  WaitOptions,
  isFinalStatus,
} from './types';

/** Tasks per `POST …/tasks` (the API's limit). */
const BATCH = 100;

/** Ids per bulk cancel or retry request (the API's limit). */
const BULK_IDS = 1000;

/** Queue, inspect, follow and steer tasks: `kiln.tasks`. */
export class Tasks {
  constructor(
    private readonly http: Transport,
    private readonly base: string,
  ) {}

  /**
   * Queues one task of `codeName`. A string payload is sent as is, anything else as JSON.
   * @example const { id } = await kiln.tasks.create('hello', { name: 'Ada' }, { priority: 2 });
   */
  async create(
    codeName: string,
    payload: unknown = '',
    options: TaskOptions = {},
  ): Promise<QueuedTask> {
    const [task] = await this.createMany([{ ...options, codeName, payload }]);
    return task;
  }

  /**
   * Queues many tasks, 100 per request; all of a request are accepted or none. Resolves to their
   * ids in the given order.
   */
  async createMany(tasks: NewTask[]): Promise<QueuedTask[]> {
    const queued: QueuedTask[] = [];
    for (let i = 0; i < tasks.length; i += BATCH) {
      const answer = await this.http.json<{ tasks: QueuedTask[] }>({
        method: 'POST',
        path: `${this.base}/tasks`,
        json: { tasks: tasks.slice(i, i + BATCH).map(taskBody) },
        idempotent: false,
      });
      queued.push(...answer.tasks.map((task) => ({ id: task.id })));
    }
    return queued;
  }

  async get(id: string, signal?: AbortSignal): Promise<Task> {
    return this.http.json<Task>({
      method: 'GET',
      path: `${this.base}/tasks/${encodeURIComponent(id)}`,
      idempotent: true,
      signal,
    });
  }

  /**
   * Every task matching `filter`, newest first, fetched a page at a time as you iterate.
   * @example for await (const task of kiln.tasks.list({ status: 'error' })) console.log(task.id);
   */
  async *list(filter: TaskFilter = {}): AsyncGenerator<Task> {
    const perPage = Math.min(100, Math.max(1, filter.perPage ?? 100));
    yield* paged(async (page) => {
      const { tasks } = await this.http.json<{ tasks: Task[] }>({
        method: 'GET',
        path: `${this.base}/tasks`,
        query: { page, per_page: perPage, ...filterQuery(filter) },
        idempotent: true,
      });
      return tasks;
    }, perPage);
  }

  /**
   * One page of the list by cursor (Kiln's): as deep in the list as you like at the cost of the
   * first page, with an optional search `q`.
   * @example let page = await kiln.tasks.page({ q: 'order-42' }); page = await kiln.tasks.page({ q: 'order-42', cursor: page.next_cursor! });
   */
  async page(options: PageOptions = {}): Promise<TaskPage> {
    const { cursor, q, ...filter } = options;
    return this.http.json<TaskPage>({
      method: 'GET',
      path: `${this.base}/tasks`,
      query: {
        cursor: cursor ?? '',
        q,
        per_page: Math.min(100, Math.max(1, filter.perPage ?? 30)),
        ...filterQuery(filter),
      },
      idempotent: true,
    });
  }

  /**
   * The project's tasks over a window (default the last 24 hours): per code by status, a time
   * series, and its queues and running tasks now.
   */
  async stats(window: { from?: Date; to?: Date } = {}): Promise<ProjectStats> {
    return this.http.json<ProjectStats>({
      method: 'GET',
      path: `${this.base}/stats`,
      query: {
        start_date: window.from ? Math.floor(window.from.getTime() / 1000) : undefined,
        end_date: window.to ? Math.ceil(window.to.getTime() / 1000) : undefined,
      },
      idempotent: true,
    });
  }

  /**
   * Cancels the tasks given by id (1000 per request; ids of other projects count as not found),
   * or every task matching a filter (request after request until none is left), as `cancel` does.
   * @example await kiln.tasks.cancelMany({ filter: { codeName: 'resize', status: 'queued' } });
   */
  async cancelMany(selection: TaskSelection): Promise<BulkCancelResult> {
    const result: BulkCancelResult = { cancelled: 0, notFound: 0 };
    for await (const answer of this.bulk<{ cancelled: number }>('cancel', selection, {})) {
      result.cancelled += answer.cancelled;
      result.notFound += answer.not_found ?? 0;
    }
    return result;
  }

  /**
   * Retries the tasks given by id, or every ended task matching a filter that has not been
   * retried yet, as `retry` does (after `delay` seconds, default 0).
   */
  async retryMany(
    selection: TaskSelection,
    options: { delay?: number } = {},
  ): Promise<BulkRetryResult> {
    const result: BulkRetryResult = { tasks: [], notFound: 0 };
    const extra = options.delay === undefined ? {} : { delay: options.delay };
    type Answer = { tasks: { id: string; original_task_id: string }[] };
    for await (const answer of this.bulk<Answer>('retry', selection, extra)) {
      result.tasks.push(...answer.tasks);
      result.notFound += answer.not_found ?? 0;
    }
    return result;
  }

  /** The answers of `POST tasks/{action}` for a selection: a request per 1000 ids, or until no `more`. */
  private async *bulk<T>(
    action: 'cancel' | 'retry',
    selection: TaskSelection,
    extra: Record<string, unknown>,
  ): AsyncGenerator<T & { not_found?: number; more?: boolean }> {
    const send = (body: Record<string, unknown>) =>
      this.http.json<T & { not_found?: number; more?: boolean }>({
        method: 'POST',
        path: `${this.base}/tasks/${action}`,
        json: { ...body, ...extra },
        // Repeating a cancel changes nothing more; a retry would queue a second one.
        idempotent: action === 'cancel',
      });
    if ('ids' in selection) {
      for (let i = 0; i < selection.ids.length; i += BULK_IDS) {
        yield await send({ ids: selection.ids.slice(i, i + BULK_IDS) });
      }
      return;
    }
    const filter = filterQuery(selection.filter);
    for (;;) {
      const answer = await send({ filter });
      yield answer;
      if (!answer.more) return;
    }
  }

  /** The retry chain the task is in, oldest first (original, its retry, …), without payloads. */
  async chain(id: string): Promise<Omit<Task, 'payload'>[]> {
    const { tasks } = await this.http.json<{ tasks: Omit<Task, 'payload'>[] }>({
      method: 'GET',
      path: `${this.base}/tasks/${encodeURIComponent(id)}/chain`,
      idempotent: true,
    });
    return tasks;
  }

  /** The task's webhook deliveries (subscriptions and its own `webhook`), newest first. */
  async *deliveries(id: string, filter: DeliveryFilter = {}): AsyncGenerator<WebhookDelivery> {
    const perPage = Math.min(100, Math.max(1, filter.perPage ?? 100));
    yield* paged(async (page) => {
      const { deliveries } = await this.http.json<{ deliveries: WebhookDelivery[] }>({
        method: 'GET',
        path: `${this.base}/tasks/${encodeURIComponent(id)}/deliveries`,
        query: { page, per_page: perPage },
        idempotent: true,
      });
      return deliveries;
    }, perPage);
  }

  /**
   * Resolves with the task once its status is final. Reads the status after 100 ms, then less
   * and less often (at most every `maxIntervalMs`, default 1000).
   */
  async wait(id: string, options: WaitOptions = {}): Promise<Task> {
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    let interval = 100;
    for (;;) {
      const task = await this.get(id, options.signal);
      if (isFinalStatus(task.status)) return task;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new KilnTimeoutError(`task ${id} still ${task.status} after ${options.timeoutMs} ms`);
      }
      await sleep(Math.min(interval, left), options.signal);
      interval = Math.min(options.maxIntervalMs ?? 1000, interval * 1.5);
    }
  }

  /** The log so far (STDOUT and STDERR as printed). 404 until the task has started. */
  async log(id: string): Promise<string> {
    return this.http.text({
      method: 'GET',
      path: `${this.base}/tasks/${encodeURIComponent(id)}/log`,
      idempotent: true,
    });
  }

  /**
   * The log line by line as the task prints it (all of it, also when called late), ending when
   * the task ends.
   * @example for await (const line of kiln.tasks.follow(id)) console.log(line);
   */
  async *follow(id: string, options: FollowOptions = {}): AsyncGenerator<string> {
    yield* lines(outputOf(this.stream(id, options)));
  }

  /**
   * The log as it arrives, in the pieces the worker stored, then `{type: 'end', status}`. Uses
   * Kiln's `log?follow=1` event stream, resuming where it broke off if the connection drops
   * (`reconnects`, default 5). Against a server without it (IronWorker), waits for the task and
   * then returns its log.
   */
  async *stream(id: string, options: FollowOptions = {}): AsyncGenerator<LogEvent> {
    const path = `${this.base}/tasks/${encodeURIComponent(id)}/log`;
    const reconnects = options.reconnects ?? 5;
    let lastEventId: string | undefined;
    for (let broken = 0; ;) {
      let res: Response;
      try {
        res = await this.http.send({
          method: 'GET',
          path,
          query: { follow: 1 },
          headers: {
            accept: 'text/event-stream',
            ...(lastEventId ? { 'last-event-id': lastEventId } : {}),
          },
          idempotent: true,
          streaming: true,
          signal: options.signal,
        });
      } catch (error) {
        if (!(error instanceof KilnError) || error.status !== 0 || broken >= reconnects) {
          throw error;
        }
        await sleep(250 * 2 ** broken++, options.signal);
        continue;
      }
      if (!(res.headers.get('content-type') ?? '').includes('text/event-stream')) {
        yield* this.withoutFollow(id, await res.text(), options);
        return;
      }
      try {
        for await (const event of sseEvents(res.body!)) {
          if (event.event === 'end') {
            const { status } = JSON.parse(event.data) as { status: FinalTaskStatus };
            yield { type: 'end', status };
            return;
          }
          if (event.id) lastEventId = event.id;
          broken = 0;
          yield { type: 'output', text: JSON.parse(event.data) as string };
        }
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        if (broken >= reconnects) {
          throw new KilnError(
            0,
            `log stream broke off: ${(error as Error).message}`,
            `GET ${path}`,
          );
        }
      }
      if (broken >= reconnects) throw new KilnError(0, 'log stream ended early', `GET ${path}`);
      await sleep(250 * 2 ** broken++, options.signal);
    }
  }

  /** Cancels a queued or running task (a running one's container is killed). */
  async cancel(id: string): Promise<Message> {
    return this.http.json<Message>({
      method: 'POST',
      path: `${this.base}/tasks/${encodeURIComponent(id)}/cancel`,
      idempotent: true,
    });
  }

  /** Queues a new task that runs this one again (after `delay` seconds, default 0). */
  async retry(id: string, options: { delay?: number } = {}): Promise<QueuedTask> {
    const answer = await this.http.json<{ tasks: QueuedTask[] }>({
      method: 'POST',
      path: `${this.base}/tasks/${encodeURIComponent(id)}/retry`,
      json: options.delay === undefined ? {} : { delay: options.delay },
      idempotent: false,
    });
    return { id: answer.tasks[0].id };
  }

  /** Sets a running task's progress (0-100) and message. */
  async setProgress(id: string, percent: number, msg?: string): Promise<Message> {
    return this.http.json<Message>({
      method: 'POST',
      path: `${this.base}/tasks/${encodeURIComponent(id)}/progress`,
      json: msg === undefined ? { percent } : { percent, msg },
      idempotent: true,
    });
  }

  /**
   * Queues a task, waits for it to end and reads its STDOUT. Resolves whatever the outcome:
   * check `task.status` (`complete` is success).
   * @example const { task, output } = await kiln.tasks.run('hello', { a: 1 }, { timeoutMs: 60_000 });
   */
  async run(
    codeName: string,
    payload: unknown = '',
    options: TaskOptions & WaitOptions = {},
  ): Promise<RunResult> {
    const { timeoutMs, signal, maxIntervalMs, ...taskOptions } = options;
    const { id } = await this.create(codeName, payload, taskOptions);
    const task = await this.wait(id, { timeoutMs, signal, maxIntervalMs });
    const output = await this.http.text({
      method: 'GET',
      path: `${this.base}/tasks/${id}/outlog`,
      idempotent: true,
    });
    return { task, output };
  }

  private async *withoutFollow(
    id: string,
    seen: string,
    options: FollowOptions,
  ): AsyncGenerator<LogEvent> {
    if (seen) yield { type: 'output', text: seen };
    const task = await this.wait(id, { signal: options.signal });
    const log = await this.log(id).catch(() => seen);
    if (log.startsWith(seen) && log.length > seen.length) {
      yield { type: 'output', text: log.slice(seen.length) };
    }
    yield { type: 'end', status: task.status as FinalTaskStatus };
  }
}

async function* outputOf(events: AsyncIterable<LogEvent>): AsyncGenerator<string> {
  for await (const event of events) if (event.type === 'output') yield event.text;
}

/** The list's filter parameters (status flags, names, epoch-second window) of `filter`. */
function filterQuery(filter: TaskFilter): Record<string, string | number | undefined> {
  const query: Record<string, string | number | undefined> = {
    code_name: filter.codeName,
    label: filter.label,
    cluster: filter.cluster,
    from_time: filter.from ? Math.floor(filter.from.getTime() / 1000) : undefined,
    to_time: filter.to ? Math.ceil(filter.to.getTime() / 1000) : undefined,
  };
  for (const status of filter.status === undefined ? [] : [filter.status].flat()) {
    query[status] = 1;
  }
  return query;
}

function taskBody(task: NewTask): Record<string, unknown> {
  const payload = task.payload ?? '';
  return {
    code_name: task.codeName,
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
    priority: task.priority,
    timeout: task.timeout,
    delay: task.delay,
    cluster: task.cluster,
    label: task.label,
    webhook: task.webhook,
  };
}
