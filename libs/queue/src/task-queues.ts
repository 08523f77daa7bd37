import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { getSharedConfigToken } from '@nestjs/bull';
import Bull, { Queue, QueueOptions } from 'bull';
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
   * Adds the task's job. Throws if Redis does not take it in time; the task row is already
   * committed, so callers log that and let the reconciler enqueue it later.
   */
  async enqueue(task: TaskJob & { cluster: string; priority: TaskPriority }): Promise<void> {
    const queue = this.queue(task.cluster, task.priority);
    const job: TaskJob = { taskId: task.taskId, projectId: task.projectId };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error('Redis did not answer in time')),
        ENQUEUE_TIMEOUT_MS,
      );
    });
    try {
      await Promise.race([
        queue.add(job, { jobId: task.taskId, removeOnComplete: true, removeOnFail: true }),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
    this.queues.clear();
  }
}
