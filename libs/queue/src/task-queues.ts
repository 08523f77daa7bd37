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
   * Adds the tasks' jobs, one Lua call per queue ({@link addTaskJobs}). Throws if Redis does not
   * take them in time; the task rows are already committed, so callers leave them to the
   * reconciler.
   */
  async enqueueMany(
    tasks: (TaskJob & { cluster: string; priority: TaskPriority })[],
  ): Promise<void> {
    const byQueue = new Map<Queue<TaskJob>, TaskJob[]>();
    for (const task of tasks) {
      const queue = this.queue(task.cluster, task.priority);
      const jobs = byQueue.get(queue);
      const job = { taskId: task.taskId, projectId: task.projectId };
      if (jobs) jobs.push(job);
      else byQueue.set(queue, [job]);
    }
    await withTimeout(
      Promise.all([...byQueue].map(([queue, jobs]) => addTaskJobs(queue, jobs))),
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
