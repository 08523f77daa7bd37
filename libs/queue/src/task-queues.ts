import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { getSharedConfigToken } from '@nestjs/bull';
import Bull, { Queue, QueueOptions } from 'bull';
import { withTimeout } from '@kiln/common';
import { addTaskJobs } from './bull-task-jobs';
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

  constructor(@Inject(getSharedConfigToken()) private readonly options: QueueOptions) {}

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
  clusterQueues(cluster: string): Queue<TaskJob>[] {
    return DISPATCH_ORDER.map((priority) => this.queue(cluster, priority));
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

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
    this.queues.clear();
  }
}
