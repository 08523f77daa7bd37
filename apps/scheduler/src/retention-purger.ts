import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { Sleeper } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { isDatabaseUnavailable } from '@kiln/database';
import { TaskRetentionStore } from '@kiln/tasks';
import { WebhookOutbox } from '@kiln/webhooks';
import { DatabaseContact } from './database-contact';
import { LeaderLease } from './leader-lease';

/** How often a replica that does not lead looks whether it leads now. */
const STANDBY_POLL_MS = 1000;
/** How long to wait after a pass failed (Postgres away, say) before the next. */
const RETRY_AFTER_FAILURE_MS = 10_000;

/** What one pass deleted, and whether it got to the end. */
export interface RetentionPass {
  /** Finished tasks deleted, with their log chunks and webhook deliveries. */
  tasks: number;
  /** Finished deliveries past `KILN_WEBHOOK_RETENTION_DAYS` (of tasks kept, or of schedules). */
  deliveries: number;
  /** False when it stopped early: shutdown, or this replica no longer leads. */
  complete: boolean;
}

/**
 * Retention (docs/operations.md): deletes finished tasks past their project's retention
 * (`retention_days`, else `KILN_TASK_RETENTION_DAYS`) with their logs and webhook deliveries,
 * then finished deliveries past `KILN_WEBHOOK_RETENTION_DAYS`.
 *
 * - Only the leader purges, and it checks that it still leads before every batch. Deleting is
 *   idempotent and the rows are locked with SKIP LOCKED, so an old leader that has not noticed
 *   yet only deletes a batch the new one would have deleted; no fencing transaction is needed
 *   (it would hold the lease row while deleting).
 * - Small batches (`KILN_RETENTION_BATCH` rows, one statement each, locks held for that
 *   statement only) with a pause between (`KILN_RETENTION_PAUSE_MS`, and at least as long as
 *   the batch took, so the purge uses at most half of one connection's time): tasks being
 *   created meanwhile keep their rate (`npm run bench -- retention`).
 * - No state of its own: a pass finds what is expired from the indexes, so a restarted or new
 *   leader carries on where the last one stopped. Passes repeat every
 *   `KILN_RETENTION_INTERVAL_SECONDS` once one got to the end; at shutdown the batch in flight
 *   finishes and nothing more starts.
 */
@Injectable()
export class RetentionPurger implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(RetentionPurger.name);
  private readonly sleeper = new Sleeper();
  private loop: Promise<void> | undefined;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly lease: LeaderLease,
    private readonly tasks: TaskRetentionStore,
    private readonly outbox: WebhookOutbox,
    private readonly contact: DatabaseContact,
  ) {}

  onApplicationBootstrap(): void {
    this.loop = this.run();
  }

  async onApplicationShutdown(): Promise<void> {
    this.sleeper.stop();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.sleeper.stopped) {
      let waitMs = STANDBY_POLL_MS;
      if (this.lease.isLeader()) {
        try {
          const pass = await this.pass();
          if (pass.complete) waitMs = this.config.retention.intervalSeconds * 1000;
        } catch (error) {
          if (isDatabaseUnavailable(error)) this.contact.lost();
          this.logger.warn(`retention pass failed: ${(error as Error).message}`);
          waitMs = RETRY_AFTER_FAILURE_MS;
        }
      }
      await this.sleeper.sleep(waitMs);
    }
  }

  /** One pass over everything expired now, batch after batch, while this replica leads. */
  async pass(): Promise<RetentionPass> {
    const { taskDays, batch } = this.config.retention;
    const started = performance.now();
    const pass: RetentionPass = { tasks: 0, deliveries: 0, complete: false };
    // Projects are walked in id order; a batch that filled up may have left some of its last
    // project's tasks, so the next one starts at that project.
    let fromProject = '';
    for (;;) {
      if (!this.mayGoOn()) return this.report(pass, started);
      const batchStarted = performance.now();
      const purged = await this.tasks.purgeBatch(fromProject, taskDays, batch);
      pass.tasks += purged.tasks;
      if (purged.tasks < batch || purged.lastProjectId === null) break;
      fromProject = purged.lastProjectId;
      await this.pause(batchStarted);
    }
    for (;;) {
      if (!this.mayGoOn()) return this.report(pass, started);
      const batchStarted = performance.now();
      const pruned = await this.outbox.prune(this.config.webhooks.retentionDays, batch);
      pass.deliveries += pruned;
      if (pruned < batch) break;
      await this.pause(batchStarted);
    }
    await this.outbox.pruneIdleEndpoints();
    pass.complete = true;
    return this.report(pass, started);
  }

  private mayGoOn(): boolean {
    return !this.sleeper.stopped && this.lease.isLeader();
  }

  /** The pause after a batch: the configured one, and at least as long as the batch took. */
  private async pause(batchStarted: number): Promise<void> {
    const took = performance.now() - batchStarted;
    await this.sleeper.sleep(Math.max(this.config.retention.pauseMs, took));
  }

  private report(pass: RetentionPass, started: number): RetentionPass {
    if (pass.tasks + pass.deliveries > 0 || !pass.complete) {
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      this.logger.log(
        `retention: deleted ${pass.tasks} tasks with their logs and deliveries, and ` +
          `${pass.deliveries} finished deliveries, in ${seconds} s` +
          (pass.complete ? '' : ' (stopped: shutdown or no longer the leader)'),
      );
    }
    return pass;
  }
}
