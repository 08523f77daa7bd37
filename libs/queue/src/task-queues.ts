import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { getSharedConfigToken } from '@nestjs/bull';
import Bull, { Queue, QueueOptions } from 'bull';
import { withTimeout } from '@kiln/common';
import type Redis from 'ioredis';
import { addTaskJobs } from './bull-task-jobs';
import {
  ClaimedJob,
  StaleClaim,
  claimTaskJobs,
  staleTaskClaims,
  workerTaskClaims,
  taskClaimsKey,
} from './task-claims';
import { DISPATCH_ORDER, TaskJob, TaskPriority, taskQueueName } from './task-job';

/** How long an enqueue may wait for Redis before it is left to the reconciler. */
const ENQUEUE_TIMEOUT_MS = 2000;

/**
 * The Bull queues of tasks, opened on demand (clusters are free-form names) and sharing two Redis
 * connections between them.
 */
@Injectable()
export class TaskQueues implements OnApplicationShutdown {
  private readonly logger = new Logger(TaskQueues.name);
  private readonly queues = new Map<string, Queue<TaskJob>>();
  private readonly claimsKey: string;

  constructor(@Inject(getSharedConfigToken()) private readonly options: QueueOptions) {
    this.claimsKey = taskClaimsKey(options.prefix ?? 'bull');
  }

  queue(cluster: string, priority: TaskPriority): Queue<TaskJob> {
    const name = taskQueueName(cluster, priority);
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Bull<TaskJob>(name, this.options);
      queue.on('error', (error) => this.logger.warn(`queue ${name}: ${error.message}`));
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** The cluster's queues, most urgent first. */
  private clusterQueues(cluster: string): Queue<TaskJob>[] {
    return DISPATCH_ORDER.map((priority) => this.queue(cluster, priority));
  }

  /**
   * Calls `listener` whenever a job of `cluster` is waiting (any priority), and resolves once the
   * subscriptions are ready. The consumer's side of the queues: a worker never sees Bull itself.
   */
  async onWaiting(cluster: string, listener: () => void): Promise<void> {
    const queues = this.clusterQueues(cluster);
    for (const queue of queues) queue.on('global:waiting', listener);
    await Promise.all(queues.map((queue) => queue.isReady()));
  }

  /**
   * Adds the tasks' jobs, one Lua call per queue and project ({@link addTaskJobs}). Throws if
   * Redis does not take them in time; the task rows are already committed, so callers leave them
   * to the reconciler.
   */
  async enqueueMany(
    tasks: (TaskJob & { cluster: string; priority: TaskPriority })[],
  ): Promise<void> {
    const batches = new Map<string, { queue: Queue<TaskJob>; projectId: string; ids: string[] }>();
    for (const task of tasks) {
      const key = `${taskQueueName(task.cluster, task.priority)} ${task.projectId}`;
      const batch = batches.get(key);
      if (batch) batch.ids.push(task.taskId);
      else {
        const queue = this.queue(task.cluster, task.priority);
        batches.set(key, { queue, projectId: task.projectId, ids: [task.taskId] });
      }
    }
    await withTimeout(
      Promise.all(
        [...batches.values()].map((batch) => addTaskJobs(batch.queue, batch.projectId, batch.ids)),
      ),
      ENQUEUE_TIMEOUT_MS,
      'Redis did not answer in time',
    );
  }

  /**
   * Delivers up to `max` jobs of `cluster` to worker `workerId`, most urgent first, first
   * dropping that worker's claims on the `settled` task ids (see libs/queue/src/task-claims.ts).
   * With `max` 0 it only drops them.
   */
  async claim(
    cluster: string,
    workerId: string,
    max: number,
    settled: string[],
  ): Promise<ClaimedJob[]> {
    return claimTaskJobs(this.clusterQueues(cluster), this.claimsKey, workerId, max, settled);
  }

  /** Claims older than `olderThanMs`: their workers died or hung between delivery and take. */
  async staleClaims(olderThanMs: number, limit: number): Promise<StaleClaim[]> {
    return staleTaskClaims(await this.client(), this.claimsKey, olderThanMs, limit);
  }

  /** The claims `workerId` holds (at its start: those of its earlier life). */
  async claimsOf(workerId: string): Promise<StaleClaim[]> {
    return workerTaskClaims(await this.client(), this.claimsKey, workerId);
  }

  async dropClaims(claims: StaleClaim[]): Promise<void> {
    if (claims.length === 0) return;
    await (await this.client()).zrem(this.claimsKey, ...claims.map((claim) => claim.member));
  }

  /** Which of these tasks have no job in Redis at all (in any state). */
  async missingJobs(
    tasks: { id: string; cluster: string; priority: TaskPriority }[],
  ): Promise<string[]> {
    const found = await Promise.all(
      tasks.map(async (task) =>
        (await this.queue(task.cluster, task.priority).getJob(task.id)) ? null : task.id,
      ),
    );
    return found.filter((id): id is string => id !== null);
  }

  /** The Redis connection every queue of this process shares (Bull's `client`). */
  private async client(): Promise<Redis> {
    const queue = this.queue('default', 0);
    await queue.isReady();
    return queue.client;
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
    this.queues.clear();
  }
}
