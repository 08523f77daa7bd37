import { Inject, Injectable, Logger } from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { KilnMetrics } from '@kiln/metrics';
import { TaskQueues } from '@kiln/queue';
import { RedisEpoch } from '@kiln/redis';
import { TaskLifecycle, TaskDelivery } from '@kiln/tasks';
import { DatabaseContact } from './database-contact';

const BATCH = 500;

/**
 * Makes Redis agree with Postgres, and recovers tasks from dead workers. Run by the leader only.
 * - Every due `queued` task that is not in Redis (delayed tasks coming due, parked tasks,
 *   automatic retries, tasks released by a worker, failed enqueues) is enqueued. Enqueueing is
 *   idempotent (the job id is the task id).
 * - If Redis lost its data, every queued task counts as not in Redis; a task the API committed
 *   but died before enqueueing is found by looking its job up in Redis; a task whose job a worker
 *   claimed but never took (it died in between) is found by its stale claim.
 * - A task whose worker stopped heartbeating is re-queued (at-least-once), or ends `error` once
 *   it has been taken `KILN_TASK_MAX_ATTEMPTS` times. Its container, if its host lives, is reaped
 *   when that worker starts again (containers carry the worker's label).
 */
@Injectable()
export class Reconciler {
  private readonly logger = new Logger(Reconciler.name);

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly delivery: TaskDelivery,
    private readonly lifecycle: TaskLifecycle,
    private readonly epoch: RedisEpoch,
    private readonly queues: TaskQueues,
    private readonly contact: DatabaseContact,
    private readonly metrics: KilnMetrics,
  ) {}

  async reconcile(): Promise<void> {
    await this.recoverLostRedis();
    await this.recoverLostJobs();
    await this.recoverStaleClaims();
    await this.recoverLapsedTasks();
    await this.enqueueUnenqueued();
  }

  private async recoverLostRedis(): Promise<void> {
    if (!(await this.epoch.renewed())) return;
    const lost = await this.delivery.unstampAll();
    if (lost > 0) this.logger.warn(`Redis lost its data: re-enqueueing ${lost} queued tasks`);
  }

  /** Tasks the API stamped in its INSERT but died before handing to Redis. */
  private async recoverLostJobs(): Promise<void> {
    const lost = await this.delivery.unstampLostJobs(200);
    if (lost > 0) this.logger.warn(`${lost} committed tasks never reached Redis: enqueueing them`);
  }

  /** Tasks whose job a worker claimed but never took: it died or hung in between. */
  private async recoverStaleClaims(): Promise<void> {
    const staleMs = this.config.scheduler.claimStaleSeconds * 1000;
    const stale = await this.queues.staleClaims(staleMs, BATCH);
    if (stale.length === 0) return;
    const lost = await this.delivery.unstamp(stale.map((claim) => claim.taskId));
    await this.queues.dropClaims(stale);
    if (lost > 0) this.logger.warn(`${lost} delivered tasks were never taken: enqueueing them`);
  }

  /**
   * A lapse counts only when the database could have heard the heartbeats: after a whole lapse of
   * unbroken contact from this scheduler ({@link DatabaseContact}), and never from before
   * Postgres's own start (a restart this process did not notice). So an outage of Postgres makes
   * no worker look dead, however long it lasts.
   */
  private async recoverLapsedTasks(): Promise<void> {
    const { heartbeatLapseSeconds, maxAttempts } = this.config.scheduler;
    if (this.contact.unbrokenSeconds() < heartbeatLapseSeconds) return;
    const { requeued, failed } = await this.lifecycle.recoverLapsed(
      heartbeatLapseSeconds,
      maxAttempts,
    );
    for (const task of failed) this.metrics.taskFinished(task, 'error');
    if (requeued + failed.length > 0) {
      this.logger.warn(
        `workers lost: ${requeued} tasks re-queued, ${failed.length} failed after ${maxAttempts} attempts`,
      );
    }
  }

  private async enqueueUnenqueued(): Promise<void> {
    let total = 0;
    for (;;) {
      const due = await this.delivery.findUnenqueued(BATCH);
      if (due.length === 0) break;
      await this.delivery.enqueueDue(due);
      total += due.length;
      if (due.length < BATCH) break;
    }
    if (total > 0) this.logger.log(`enqueued ${total} due tasks`);
  }
}
