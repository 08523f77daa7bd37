import { Injectable } from '@nestjs/common';
import { KilnException, newId } from '@kiln/common';
import { Code, CodesService } from '@kiln/codes';
import { KilnMetrics, TaskLabels, TaskSource, TaskTally } from '@kiln/metrics';
import { ProjectLimits } from '@kiln/projects';
import { TaskLogFeed, TaskSignals } from '@kiln/redis';
import { Task } from './task.entity';
import { retryOf } from './task-retry';
import { NewTaskCode, NewTaskRow } from './store/task-record';
import { TaskListQuery, TaskPage, TaskStore } from './store/task-store';
import { BULK_FILTER_LIMITS, BulkOutcome, BulkTarget } from './task-bulk';
import { TaskSpec } from './task-spec';
import { TASK_STATUSES, TaskStatus } from './task-status';
import { QueuedTask, TaskDelivery } from './task-delivery';
import { QueuedTasksQuota } from './queued-tasks-quota';

/** Tasks a retry chain reads each way from a task, at most. */
export const CHAIN_LIMIT = 100;

@Injectable()
export class TasksService {
  constructor(
    private readonly store: TaskStore,
    private readonly codes: CodesService,
    private readonly signals: TaskSignals,
    private readonly feed: TaskLogFeed,
    private readonly delivery: TaskDelivery,
    private readonly limits: ProjectLimits,
    private readonly queuedQuota: QueuedTasksQuota,
    private readonly metrics: KilnMetrics,
  ) {}

  /**
   * Queues tasks all-or-nothing: each code must exist (404), each cluster be `default` or granted
   * to the project (403), and the project's queued tasks stay within its quota (429); then the
   * rows are inserted by one statement (each pinned to its code's current revision), and the due
   * ones are handed to Redis. A task whose enqueue fails is still
   * accepted; the reconciler enqueues it. Returns the new tasks' ids, in order.
   *
   * This is the API's hot path (docs/benchmarks.md, ingest): each task goes to Postgres as a
   * short `NewTaskRow`, and what tasks share (project, codes, time) is sent once per request.
   * `source` labels `kiln_tasks_created_total`: `api`, or `trigger` for a trigger URL.
   */
  async create(
    projectId: string,
    specs: TaskSpec[],
    source: TaskSource = 'api',
  ): Promise<string[]> {
    const codes: Code[] = [];
    const codeIndex = new Map<string, number>();
    for (const spec of specs) {
      if (codeIndex.has(spec.codeName)) continue;
      const code = await this.codes.findByNameForQueueing(projectId, spec.codeName);
      if (!code) throw KilnException.notFound(`Code "${spec.codeName}" not found`);
      codeIndex.set(spec.codeName, codes.length);
      codes.push(code);
    }
    await this.limits.checkClusters(
      projectId,
      specs.map((spec) => spec.cluster),
    );
    const now = new Date();
    const ids: string[] = [];
    const rows: NewTaskRow[] = [];
    const due: QueuedTask[] = [];
    const tally = this.metrics.enabled ? new TaskTally(this.metrics, source) : undefined;
    for (const spec of specs) {
      const k = codeIndex.get(spec.codeName)!;
      const id = newId(now);
      ids.push(id);
      const row: NewTaskRow = { i: id, p: spec.payload, t: spec.timeout };
      if (spec.priority !== undefined) row.r = spec.priority;
      if (spec.delay !== 0) row.d = spec.delay;
      if (spec.cluster !== 'default') row.c = spec.cluster;
      if (spec.label !== '') row.l = spec.label;
      if (spec.webhook !== null) row.w = spec.webhook;
      if (k !== 0) row.k = k;
      rows.push(row);
      const priority = spec.priority ?? codes[k].defaultPriority;
      if (spec.delay === 0) due.push({ id, projectId, cluster: spec.cluster, priority });
      tally?.add(projectId, codes[k].name, spec.cluster, priority);
    }
    const taskCodes: NewTaskCode[] = codes.map((code) => ({
      id: code.id,
      projectId,
      revisionId: code.latestRevisionId,
      name: code.name,
      rev: code.rev,
      defaultPriority: code.defaultPriority,
    }));
    await this.insertWithinQuota(projectId, rows.length, () =>
      this.store.insert({ now, rows, codes: taskCodes, stampDue: true }),
    );
    tally?.flush();
    await this.delivery.enqueueDue(due, { stamped: true });
    return ids;
  }

  /** Runs `insert` of `count` queued tasks if the project's queued-tasks quota has room for them. */
  private async insertWithinQuota(
    projectId: string,
    count: number,
    insert: () => Promise<void>,
  ): Promise<void> {
    const release = await this.queuedQuota.reserve(projectId, count);
    try {
      await insert();
    } catch (error) {
      release();
      throw error;
    }
  }

  async get(projectId: string, id: string): Promise<Task> {
    const task = await this.store.find(projectId, id);
    if (!task) throw KilnException.notFound('Task not found');
    return task;
  }

  async list(projectId: string, query: TaskListQuery): Promise<TaskPage> {
    return this.store.list(projectId, query);
  }

  /**
   * Cancels a task that has not ended: a queued or delayed one never runs; a running one is
   * `cancelled` at once and its worker is told to kill the container. A task that already ended
   * is left as it is (IronWorker's clients cancel whole lists without looking).
   */
  async cancel(projectId: string, id: string): Promise<void> {
    await this.get(projectId, id);
    await this.cancelled(await this.store.cancel(projectId, { taskId: id }));
  }

  /**
   * A bulk cancel (`POST …/tasks/cancel`): the tasks among `ids` that have not ended, or the first
   * BULK_FILTER_LIMITS.cancel of those matching `filter` (`more` when there may be others); each
   * as {@link cancel} does it. Ids of tasks not in the project are counted as not found.
   */
  async cancelMany(projectId: string, target: BulkTarget): Promise<BulkOutcome<number>> {
    if ('ids' in target) {
      const found = await this.store.idsOf(projectId, target.ids);
      const rows = await this.store.cancel(projectId, { taskIds: found });
      return { done: await this.cancelled(rows), notFound: target.ids.length - found.length };
    }
    const limit = BULK_FILTER_LIMITS.cancel;
    const rows = await this.store.cancel(projectId, {
      filter: target.filter,
      before: new Date(),
      limit,
    });
    return { done: await this.cancelled(rows), more: rows.length === limit };
  }

  /** Cancels every task of a code that has not ended (`POST …/codes/{id}/cancel_all`). */
  async cancelAll(projectId: string, codeId: string): Promise<number> {
    return this.cancelled(await this.store.cancel(projectId, { codeId }));
  }

  /**
   * Tells the workers of the cancelled tasks that were taken to stop them (each says it ended once
   * it has), and the live feed that the ones still queued have ended (no worker will): a follower
   * or an invoke waiting for one hears it at once. Returns how many.
   */
  private async cancelled(
    rows: (TaskLabels & { id: string; was: TaskStatus; attempt: number })[],
  ): Promise<number> {
    for (const row of rows) this.metrics.taskFinished(row, 'cancelled');
    await this.signals.cancelled(rows.filter((row) => row.was !== 'queued').map((row) => row.id));
    await this.feed.endedAll(rows.filter((row) => row.was === 'queued'));
    return rows.length;
  }

  /** Sets `percent` and `msg` of a task that has not ended; an ended task is left as it is. */
  async setProgress(
    projectId: string,
    id: string,
    percent: number | undefined,
    msg: string | undefined,
  ): Promise<void> {
    await this.get(projectId, id);
    await this.store.setProgress(projectId, id, percent ?? null, msg ?? null);
  }

  /** Queues a new task running `id` again (same code revision and payload), linked by `original_task_id`. */
  async retry(projectId: string, id: string, delaySeconds: number): Promise<Task> {
    const [retry] = await this.queueRetries(
      projectId,
      [await this.get(projectId, id)],
      delaySeconds,
    );
    return retry;
  }

  /**
   * Queues a retry of each of `originals`, all or nothing: their clusters checked (403) and the
   * queued-tasks quota reserved for all (429) first, then the retries inserted in one transaction,
   * counted, and the due ones handed to Redis.
   */
  private async queueRetries(
    projectId: string,
    originals: Task[],
    delaySeconds: number,
  ): Promise<Task[]> {
    if (originals.length === 0) return [];
    await this.limits.checkClusters(
      projectId,
      originals.map((task) => task.cluster),
    );
    const retries = originals.map((original) => retryOf(original, delaySeconds));
    await this.insertWithinQuota(projectId, retries.length, () =>
      this.store.insertRetries(originals.map((original, i) => [original, retries[i]])),
    );
    for (const retry of retries) this.metrics.tasksQueued(retry, 'retry');
    if (delaySeconds === 0) await this.delivery.enqueueDue(retries);
    return retries;
  }

  /**
   * A bulk retry (`POST …/tasks/retry`): a retry of each task among `ids`, or of the first
   * BULK_FILTER_LIMITS.retry matching `filter` that have ended and not been retried; as
   * {@link retry} does it, all or nothing (`queueRetries`). Returns the retries.
   */
  async retryMany(
    projectId: string,
    target: BulkTarget,
    delaySeconds: number,
  ): Promise<BulkOutcome<Task[]>> {
    const limit = BULK_FILTER_LIMITS.retry;
    const originals =
      'ids' in target
        ? await this.store.findMany(projectId, target.ids)
        : await this.store.findRetryable(projectId, target.filter, new Date(), limit);
    const retries = await this.queueRetries(projectId, originals, delaySeconds);
    return 'ids' in target
      ? { done: retries, notFound: target.ids.length - originals.length }
      : { done: retries, more: originals.length === limit };
  }

  /**
   * The retry chain a task is in, oldest first: its original, the original's original and so on
   * back to the first, then its retry, the retry's retry and so on (at most CHAIN_LIMIT each way).
   */
  async chain(projectId: string, id: string): Promise<Task[]> {
    const task = await this.get(projectId, id);
    return this.store.chain(projectId, task, CHAIN_LIMIT);
  }

  /** Task counts per status for a code, over tasks created in [from, to]. */
  async statsOfCode(codeId: string, from: Date, to: Date): Promise<Record<TaskStatus, number>> {
    const rows = await this.store.countByStatus(codeId, from, to);
    const stats = Object.fromEntries(TASK_STATUSES.map((status) => [status, 0])) as Record<
      TaskStatus,
      number
    >;
    for (const row of rows) stats[row.status] = row.n;
    return stats;
  }
}
