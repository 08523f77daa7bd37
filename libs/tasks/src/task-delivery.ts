import { Injectable, Logger } from '@nestjs/common';
import { TaskPriority, TaskQueues } from '@kiln/queue';
import { QueuedTask, TaskStamps } from './store/task-stamps';

export type { QueuedTask };

/**
 * How a task gets from Postgres to a worker, and back when something was lost on the way: the
 * `enqueued_at` stamp, the job in Redis, and the recoveries the reconciler runs (due tasks not in
 * Redis, stamps whose job is missing, Redis's data lost). Every path that queues a task — API
 * creates, schedule fires, automatic and manual retries, released and recovered tasks — goes
 * through here.
 */
@Injectable()
export class TaskDelivery {
  private readonly logger = new Logger(TaskDelivery.name);

  constructor(
    private readonly stamps: TaskStamps,
    private readonly queues: TaskQueues,
  ) {}

  /**
   * Hands tasks to Redis. `enqueued_at` is stamped first and cleared again for whatever Redis
   * did not take: stamping after the enqueue would race with a worker that takes the job at once
   * and parks the task (paused code, concurrency limit), hiding it from the reconciler forever.
   */
  async enqueueDue(tasks: QueuedTask[], options: { stamped?: boolean } = {}): Promise<void> {
    if (tasks.length === 0) return;
    if (!options.stamped) await this.stamps.stamp(tasks.map((task) => task.id));
    try {
      await this.queues.enqueueMany(
        tasks.map((task) => ({
          taskId: task.id,
          projectId: task.projectId,
          cluster: task.cluster,
          priority: task.priority as TaskPriority,
        })),
      );
    } catch (error) {
      // Some jobs may have been added: clearing the stamp only makes the reconciler add them
      // again, which is harmless (the job id is the task id).
      this.logger.warn(
        `${tasks.length} tasks left for the reconciler: ${(error as Error).message}`,
      );
      await this.unstamp(tasks.map((task) => task.id));
    }
  }

  /**
   * Queued tasks that are due but not in Redis: delayed tasks whose time has come, tasks parked by
   * a worker (paused code, concurrency limit) or released by one, automatic retries, and tasks
   * whose enqueue failed. Tasks of paused codes wait. Oldest due first.
   */
  async findUnenqueued(limit: number): Promise<QueuedTask[]> {
    return this.stamps.unstamped(limit);
  }

  /**
   * Queued tasks stamped as enqueued a while ago whose job is not in Redis: the API died between
   * its INSERT (which stamps them) and the enqueue. Their stamp is cleared so that the reconciler
   * enqueues them. Checks the `limit` oldest stamps of the last two minutes.
   */
  async unstampLostJobs(limit: number): Promise<number> {
    const stamped = await this.stamps.recentlyStamped(limit);
    if (stamped.length === 0) return 0;
    const missing = await this.queues.missingJobs(
      stamped.map((task) => ({
        id: task.id,
        projectId: task.projectId,
        cluster: task.cluster,
        priority: task.priority as TaskPriority,
      })),
    );
    if (missing.length === 0) return 0;
    await this.unstamp(missing);
    return missing.length;
  }

  /**
   * Clears the enqueued stamp of those of `ids` still queued, so that the reconciler enqueues
   * them (again); returns how many it cleared.
   */
  async unstamp(ids: string[]): Promise<number> {
    return this.stamps.unstamp(ids);
  }

  /**
   * Redis lost its data: every queued task counts as not in Redis, so the reconciler enqueues it
   * again. Returns how many.
   */
  async unstampAll(): Promise<number> {
    return this.stamps.unstampAll();
  }
}
