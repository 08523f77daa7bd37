import { KilnError, KilnTimeoutError } from './errors';
import { Transport, sleep } from './http';
import { paged } from './paging';
import { lines, sseEvents } from './streams';
import {
  FinalTaskStatus,
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
    const statuses = filter.status === undefined ? [] : [filter.status].flat();
    yield* paged(async (page) => {
      const query: Record<string, string | number | undefined> = {
        page,
        per_page: perPage,
        code_name: filter.codeName,
        label: filter.label,
        cluster: filter.cluster,
        from_time: filter.from ? Math.floor(filter.from.getTime() / 1000) : undefined,
        to_time: filter.to ? Math.ceil(filter.to.getTime() / 1000) : undefined,
      };
      for (const status of statuses) query[status] = 1;
      const { tasks } = await this.http.json<{ tasks: Task[] }>({
        method: 'GET',
        path: `${this.base}/tasks`,
        query,
        idempotent: true,
      });
      return tasks;
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
