import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { getSharedConfigToken } from '@nestjs/bull';
import type { QueueOptions } from 'bull';
import type Redis from 'ioredis';
import { withTimeout } from '@kiln/common';
import { JobTarget, addTaskJobs } from './bull-task-jobs';
import {
  ClaimedJob,
  StaleClaim,
  claimTaskJobs,
  staleTaskClaims,
  workerTaskClaims,
  taskClaimsKey,
} from './task-claims';
import { TaskJob, clusterKeys, queueKeys, sharedQueueName, taskQueueName } from './task-job';

/** How long an enqueue may wait for Redis before it is left to the reconciler. */
const ENQUEUE_TIMEOUT_MS = 2000;

/**
 * The task queues: Bull's key layout, written and read by Kiln's own scripts
 * (docs/decisions/0001-own-lua-on-bulls-layout.md), on the two connections Bull's shared
 * configuration gives every process (`client` for commands, `subscriber` for the wake-ups).
 * Queues are per (cluster, project, priority) and served fairly across projects (task-claims.ts).
 */
@Injectable()
export class TaskQueues implements OnApplicationShutdown {
  private readonly prefix: string;
  private readonly claimsKey: string;
  private commands?: Redis;
  private subscriber?: Redis;

  constructor(@Inject(getSharedConfigToken()) private readonly options: QueueOptions) {
    this.prefix = options.prefix ?? 'bull';
    this.claimsKey = taskClaimsKey(this.prefix);
  }

  /**
   * Calls `listener` whenever jobs of `cluster` are added, and resolves once the subscription is
   * ready. The consumer's side of the queues: a worker never sees Bull itself.
   */
  async onWaiting(cluster: string, listener: () => void): Promise<void> {
    const channel = clusterKeys(this.prefix, cluster).waiting;
    const subscriber = this.connection('subscriber');
    subscriber.on('message', (from: string) => {
      if (from === channel) listener();
    });
    await subscriber.subscribe(channel);
  }

  /**
   * Adds the tasks' jobs, one Lua call per queue and project ({@link addTaskJobs}). Throws if
   * Redis does not take them in time; the task rows are already committed, so callers leave them
   * to the reconciler.
   */
  async enqueueMany(tasks: (TaskJob & Omit<JobTarget, 'projectId'>)[]): Promise<void> {
    const batches = new Map<string, { target: JobTarget; ids: string[] }>();
    for (const task of tasks) {
      const key = taskQueueName(task.cluster, task.projectId, task.priority);
      const batch = batches.get(key);
      if (batch) batch.ids.push(task.taskId);
      else {
        const { cluster, projectId, priority } = task;
        batches.set(key, { target: { cluster, projectId, priority }, ids: [task.taskId] });
      }
    }
    const client = this.client();
    await withTimeout(
      Promise.all(
        [...batches.values()].map((batch) =>
          addTaskJobs(client, this.prefix, batch.target, batch.ids),
        ),
      ),
      ENQUEUE_TIMEOUT_MS,
      'Redis did not answer in time',
    );
  }

  /**
   * Delivers up to `max` jobs of `cluster` to worker `workerId`, a project at a time, first
   * dropping that worker's claims on the `settled` task ids (see libs/queue/src/task-claims.ts).
   * With `max` 0 it only drops them.
   */
  async claim(
    cluster: string,
    workerId: string,
    max: number,
    settled: string[],
  ): Promise<ClaimedJob[]> {
    return claimTaskJobs(this.client(), this.prefix, cluster, workerId, max, settled);
  }

  /** Claims older than `olderThanMs`: their workers died or hung between delivery and take. */
  async staleClaims(olderThanMs: number, limit: number): Promise<StaleClaim[]> {
    return staleTaskClaims(this.client(), this.claimsKey, olderThanMs, limit);
  }

  /** The claims `workerId` holds (at its start: those of its earlier life). */
  async claimsOf(workerId: string): Promise<StaleClaim[]> {
    return workerTaskClaims(this.client(), this.claimsKey, workerId);
  }

  async dropClaims(claims: StaleClaim[]): Promise<void> {
    if (claims.length === 0) return;
    await this.client().zrem(this.claimsKey, ...claims.map((claim) => claim.member));
  }

  /** Which of these tasks have no job in Redis at all: in neither their queue nor the shared one. */
  async missingJobs(tasks: (JobTarget & { id: string })[]): Promise<string[]> {
    if (tasks.length === 0) return [];
    const pipeline = this.client().pipeline();
    for (const task of tasks) {
      const own = queueKeys(
        this.prefix,
        taskQueueName(task.cluster, task.projectId, task.priority),
      );
      const shared = queueKeys(this.prefix, sharedQueueName(task.cluster, task.priority));
      pipeline.exists(own.jobs + task.id, shared.jobs + task.id);
    }
    const found = (await pipeline.exec()) ?? [];
    return tasks
      .filter((_task, i) => {
        const [error, count] = found[i] ?? [];
        if (error) throw error;
        return count === 0;
      })
      .map((task) => task.id);
  }

  private client(): Redis {
    return (this.commands ??= this.connection('client'));
  }

  private connection(type: 'client' | 'subscriber'): Redis {
    if (type === 'subscriber' && this.subscriber) return this.subscriber;
    if (!this.options.createClient) {
      throw new Error('the queue configuration gives no createClient');
    }
    const connection = this.options.createClient(type, {}) as unknown as Redis;
    if (type === 'subscriber') this.subscriber = connection;
    return connection;
  }

  async onApplicationShutdown(): Promise<void> {
    const connections = [this.commands, this.subscriber].filter((c): c is Redis => !!c);
    this.commands = this.subscriber = undefined;
    await Promise.all(connections.map((connection) => connection.quit().catch(() => undefined)));
  }
}
