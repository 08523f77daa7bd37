import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  BeforeApplicationShutdown,
} from '@nestjs/common';
import type { Job, Queue } from 'bull';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { DockerEngine } from '@kiln/docker';
import { TaskJob, TaskQueues, TaskSignals, parseTaskJob } from '@kiln/queue';
import { TaskLifecycle } from '@kiln/tasks';
import { TaskFiles } from './task-files';
import { TaskRunner } from './task-runner';

/** Bull's non-blocking fetch (what `getNextJob` does when the queue is not drained). */
interface FetchableQueue extends Queue<TaskJob> {
  moveToActive(): Promise<Job<TaskJob> | null | undefined>;
}

/** How long a SIGTERM waits for running tasks before they are killed and released. */
const SHUTDOWN_GRACE_MS = 25_000;
const IDLE_POLL_MS = 1000;

/**
 * The worker's loop: while it has a free slot it takes the next job of its cluster, most urgent
 * priority first, and hands the task to the runner. A Bull job only delivers a task id; taking the
 * task is a compare-and-set in Postgres, after which the job is dropped from Redis.
 */
@Injectable()
export class TaskDispatcher implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(TaskDispatcher.name);
  private readonly active = new Map<string, Promise<void>>();
  private queues: FetchableQueue[] = [];
  private stopping = false;
  private wakeUp: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly taskQueues: TaskQueues,
    private readonly lifecycle: TaskLifecycle,
    private readonly runner: TaskRunner,
    private readonly docker: DockerEngine,
    private readonly signals: TaskSignals,
    private readonly files: TaskFiles,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.reapOrphans();
    // Their containers are gone: so go the files of an earlier life's tasks.
    if (this.config.container.contractDelivery === 'bind') await this.files.reset();
    this.queues = this.taskQueues.clusterQueues(this.config.worker.cluster) as FetchableQueue[];
    for (const queue of this.queues) queue.on('global:waiting', () => this.wake());
    await Promise.all(this.queues.map((queue) => queue.isReady()));
    await this.signals.onCancel((taskId) => this.stopTask(taskId));
    this.heartbeat = setInterval(() => {
      this.lifecycle
        .heartbeat(this.config.worker.id, this.runner.runningTaskIds())
        .then((gone) => gone.forEach((taskId) => this.stopTask(taskId)))
        .catch((error: Error) => this.logger.warn(`heartbeat failed: ${error.message}`));
    }, this.config.worker.heartbeatSeconds * 1000);
    this.loop = this.dispatch();
    this.logger.log(
      `worker ${this.config.worker.id} takes cluster "${this.config.worker.cluster}" tasks, ${this.config.worker.concurrency} at a time`,
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.loop;
    clearInterval(this.heartbeat);
    const inFlight = [...this.active.values()];
    if (inFlight.length === 0) return this.runner.settled();
    this.logger.log(
      `waiting up to ${SHUTDOWN_GRACE_MS / 1000} s for ${inFlight.length} running tasks`,
    );
    const settled = await Promise.race([
      Promise.allSettled(inFlight).then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), SHUTDOWN_GRACE_MS)),
    ]);
    if (!settled) await this.reapOrphans();
    await this.runner.settled();
  }

  private async dispatch(): Promise<void> {
    while (!this.stopping) {
      if (this.active.size >= this.config.worker.concurrency) {
        await this.idle();
        continue;
      }
      let job: Job<TaskJob> | null | undefined;
      try {
        job = await this.fetch();
      } catch (error) {
        this.logger.warn(`cannot fetch jobs: ${(error as Error).message}`);
        await this.idle();
        continue;
      }
      if (job) this.start(job);
      else await this.idle();
    }
  }

  private async fetch(): Promise<Job<TaskJob> | null> {
    for (const queue of this.queues) {
      const job = await queue.moveToActive();
      if (job) return job;
    }
    return null;
  }

  private start(job: Job<TaskJob>): void {
    const key = String(job.id);
    const work = this.handle(job)
      .catch((error: Error) =>
        this.logger.error(`job ${key} failed: ${error.stack ?? error.message}`),
      )
      .finally(() => {
        this.active.delete(key);
        this.wake();
      });
    this.active.set(key, work);
  }

  private async handle(job: Job<TaskJob>): Promise<void> {
    const data = parseTaskJob(job.data);
    const task = data ? await this.takeWithRetry(data.taskId) : null;
    // The job has done its part (delivery); from here Postgres tracks the task.
    await job.moveToCompleted('taken', true, true).catch((error: Error) => {
      this.logger.warn(`job ${String(job.id)} not removed: ${error.message}`);
    });
    if (!data) this.logger.warn(`dropped job ${String(job.id)} with invalid data`);
    if (task) await this.runner.run(task);
  }

  /** Postgres restarting should not lose a delivered job: retry the take for about a minute. */
  private async takeWithRetry(taskId: string) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.lifecycle.take(taskId, this.config.worker.id);
      } catch (error) {
        if (attempt >= 12 || this.stopping) throw error;
        await new Promise((resolve) => setTimeout(resolve, 5000));
      }
    }
  }

  /**
   * Removes this worker's containers from an earlier life (or left at shutdown) and puts their
   * tasks back in the queue.
   */
  private async reapOrphans(): Promise<void> {
    const ids = await this.docker.containersWithLabel('kiln.worker', this.config.worker.id);
    for (const id of ids) {
      const info = await this.docker.inspect(id);
      await this.docker.remove(id);
      const taskId = info?.Config.Labels['kiln.task'];
      const attempt = Number(info?.Config.Labels['kiln.attempt']);
      if (taskId && Number.isInteger(attempt) && (await this.lifecycle.release(taskId, attempt))) {
        this.logger.log(`released task ${taskId} of a removed orphan container`);
      }
    }
  }

  /** Kills the container of a task that is no longer this worker's to run (cancelled). */
  private stopTask(taskId: string): void {
    this.runner.stop(taskId, 'cancelled').catch((error: Error) => {
      this.logger.warn(`could not stop task ${taskId}: ${error.message}`);
    });
  }

  private wake(): void {
    this.wakeUp?.();
  }

  private idle(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, IDLE_POLL_MS);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = done;
    });
  }
}
