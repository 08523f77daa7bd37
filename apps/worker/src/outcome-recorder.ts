import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { join } from 'node:path';
import { Sleeper } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { isDatabaseUnavailable } from '@kiln/database';
import { KilnMetrics } from '@kiln/metrics';
import { TaskLogFeed } from '@kiln/redis';
import { TaskLifecycle, TaskLogStore, TaskDelivery } from '@kiln/tasks';
import { OutcomeJournal, PendingOutcome } from './outcome-journal';

/** An error that is not an outage (a bug, a refused value) is tried this many times, then given up. */
const TRIES_FOR_OTHER_ERRORS = 5;

/**
 * Records the end of an attempt — its last log pieces, then its final status, a compare-and-set
 * on (task, attempt) — and does not give up while Postgres is away. The first write is tried
 * straight away; only if it fails does the outcome go to the {@link OutcomeJournal} on local disk
 * (so the usual path does no disk I/O), and it is tried again with backoff for as long as the
 * worker lives. A worker that is stopped or killed meanwhile writes it when it starts again
 * ({@link replay}). While an outcome waits, its task stays in the worker's heartbeat
 * ({@link holds}), so the scheduler never re-runs a task that has ended.
 */
@Injectable()
export class OutcomeRecorder implements OnApplicationShutdown {
  private readonly logger = new Logger(OutcomeRecorder.name);
  private readonly journal: OutcomeJournal;
  private readonly sleeper = new Sleeper();
  private readonly waiting = new Set<string>();

  constructor(
    @Inject(KILN_CONFIG) config: KilnConfig,
    private readonly lifecycle: TaskLifecycle,
    private readonly logs: TaskLogStore,
    private readonly delivery: TaskDelivery,
    private readonly feed: TaskLogFeed,
    private readonly metrics: KilnMetrics,
  ) {
    this.journal = new OutcomeJournal(join(config.worker.journalDir, config.worker.id));
  }

  /** Ids of the tasks whose outcome is waiting for Postgres. */
  holds(): string[] {
    return [...this.waiting];
  }

  /**
   * Resolves once Postgres has the outcome, or once the worker stops (the journal keeps it then),
   * or after {@link TRIES_FOR_OTHER_ERRORS} failures that are not an outage.
   */
  async record(pending: PendingOutcome): Promise<void> {
    const { taskId, attempt } = pending;
    this.waiting.add(taskId);
    let journaled = false;
    try {
      await this.sleeper.retry(
        async (tries) => {
          await this.write(pending);
          if (journaled) {
            this.journal.remove(taskId, attempt);
            this.logger.log(`outcome of task ${taskId} recorded after ${tries} tries`);
          }
        },
        (error, tries) => {
          const reason = (error as Error).message;
          if (!isDatabaseUnavailable(error) && tries >= TRIES_FOR_OTHER_ERRORS) {
            this.logger.error(`outcome of task ${taskId} given up after ${tries} tries: ${reason}`);
            if (journaled) this.journal.remove(taskId, attempt);
            return false;
          }
          journaled ||= this.keep(pending);
          if (tries === 1) {
            this.logger.warn(`outcome of task ${taskId} not recorded yet (${reason}): retrying`);
          }
          return true;
        },
      );
    } catch {
      // Given up (logged above), or the worker stops: the journal keeps what it holds.
    } finally {
      this.waiting.delete(taskId);
    }
  }

  /** Records the outcomes an earlier life of this worker kept; resolves once all are written. */
  async replay(): Promise<number> {
    const kept = this.journal.all();
    await Promise.all(kept.map((pending) => this.record(pending)));
    if (kept.length > 0) {
      this.logger.log(`recorded ${kept.length} outcomes kept by an earlier life`);
    }
    return kept.length;
  }

  /** Stops retrying: what is still waiting stays in the journal for the next start. */
  onApplicationShutdown(): void {
    this.sleeper.stop();
  }

  private async write({ taskId, attempt, outcome, chunks, labels }: PendingOutcome): Promise<void> {
    // Chunks first (idempotent: ON CONFLICT DO NOTHING), so a follower told "ended" reads a whole log.
    await this.logs.append(taskId, attempt, chunks);
    const { finished, retry } = await this.lifecycle.finish(taskId, attempt, outcome);
    // From here on the outcome is stored: what follows is best effort.
    if (finished && labels) {
      this.metrics.taskFinished(labels, outcome.status);
      if (outcome.durationMs !== null && this.metrics.enabled) {
        this.metrics.runDuration.observe(
          { cluster: labels.cluster, status: outcome.status },
          outcome.durationMs / 1000,
        );
      }
    }
    if (retry) this.metrics.tasksQueued(retry, 'retry');
    await this.feed.ended(taskId, attempt).catch((error: Error) => {
      this.logger.warn(`followers of task ${taskId} not told it ended: ${error.message}`);
    });
    // A retry not enqueued now is enqueued by the reconciler (its enqueued_at is empty).
    if (retry && retry.delay === 0) {
      await this.delivery.enqueueDue([retry]).catch((error: Error) => {
        this.logger.warn(`retry ${retry.id} left to the reconciler: ${error.message}`);
      });
    }
  }

  /** Saves the outcome to the journal; false (and a log line) if the disk refused. */
  private keep(pending: PendingOutcome): boolean {
    try {
      this.journal.save(pending);
      return true;
    } catch (error) {
      this.logger.error(
        `outcome of task ${pending.taskId} not journaled: ${(error as Error).message}`,
      );
      return false;
    }
  }
}
