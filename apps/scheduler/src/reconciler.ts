import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { TasksService } from '@kiln/tasks';

const BATCH = 500;

/**
 * Makes Redis agree with Postgres: every due `queued` task that is not in Redis (delayed tasks
 * coming due, tasks released by a worker, enqueues that failed) is enqueued. Enqueueing is
 * idempotent (the job id is the task id), so a pass that overlaps the API's own enqueue is harmless.
 */
@Injectable()
export class Reconciler implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(Reconciler.name);
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<void> = Promise.resolve();

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly tasks: TasksService,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      this.pass = this.pass
        .then(() => this.reconcile())
        .then(
          () => undefined,
          (error: Error) => this.logger.warn(`reconcile pass failed: ${error.message}`),
        );
    }, this.config.scheduler.reconcileSeconds * 1000);
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.pass;
  }

  /** One pass; returns how many tasks were handed to Redis. */
  async reconcile(): Promise<number> {
    let total = 0;
    for (;;) {
      const due = await this.tasks.findUnenqueued(BATCH);
      if (due.length === 0) break;
      await this.tasks.enqueueDue(due);
      total += due.length;
      if (due.length < BATCH) break;
    }
    if (total > 0) this.logger.log(`enqueued ${total} due tasks`);
    return total;
  }
}
