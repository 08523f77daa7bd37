import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  BeforeApplicationShutdown,
} from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { Sleeper } from '@kiln/common';
import { DockerEngine } from '@kiln/docker';
import { KilnMetrics } from '@kiln/metrics';
import { ClaimedJob, TaskQueues, parseTaskJob } from '@kiln/queue';
import { TaskSignals } from '@kiln/redis';
import { TaskLifecycle, TaskLogStore, TaskDelivery } from '@kiln/tasks';
import { exitedOutcome, hasExited } from './outcome';
import { OutcomeRecorder } from './outcome-recorder';
import { TaskFiles } from './task-files';
import { TaskRunner } from './task-runner';

const IDLE_POLL_MS = 1000;
/** After the grace, how long the killed tasks get to be handed back before the worker exits. */
const HAND_BACK_WAIT_MS = 10_000;
/** A take that fails is tried this many times, this far apart (about a minute). */
const TAKE_TRIES = 12;
const TAKE_RETRY_MS = 5000;

/**
 * The worker's loop: while it has free slots it claims as many jobs of its cluster, most urgent
 * priority first (one Redis call, libs/queue/src/task-claims.ts), and hands each task to the
 * runner. A job only delivers a task id; taking the task is a compare-and-set in Postgres. Once
 * the take is settled (taken, or not to be taken) the claim is dropped, with the next claim call.
 */
@Injectable()
export class TaskDispatcher implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(TaskDispatcher.name);
  private readonly active = new Map<string, Promise<void>>();
  /** Task ids whose take is settled, whose claims go with the next call to Redis. */
  private settled: string[] = [];
  private stopping = false;
  private readonly sleeper = new Sleeper();
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
    private readonly outcomes: OutcomeRecorder,
    private readonly logs: TaskLogStore,
    private readonly delivery: TaskDelivery,
    metrics: KilnMetrics,
  ) {
    // kiln_worker_slots{state}: busy are the tasks this worker holds (pulling, running, recording).
    metrics.beforeScrape(() => {
      const { concurrency, cluster } = this.config.worker;
      const busy = Math.min(this.active.size, concurrency);
      metrics.workerSlots.set({ cluster, state: 'busy' }, busy);
      metrics.workerSlots.set({ cluster, state: 'free' }, concurrency - busy);
    });
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.config.container.network.toLowerCase() === 'host') {
      this.logger.warn(
        'KILN_CONTAINER_NETWORK=host (KILN_UNSAFE_ALLOW_HOST_NETWORK): task containers share this ' +
          "host's network and reach every service on its loopback; never run untrusted tenants' tasks so",
      );
    }
    await this.recoverEarlierLife();
    // Their containers are gone: so go the files of an earlier life's tasks.
    if (this.config.container.contractDelivery === 'bind') await this.files.reset();
    await this.taskQueues.onWaiting(this.config.worker.cluster, () => this.wake());
    await this.signals.onCancel((taskId) => this.stopTask(taskId));
    this.heartbeat = setInterval(() => {
      const held = new Set([...this.runner.runningTaskIds(), ...this.outcomes.holds()]);
      this.lifecycle
        .heartbeat(this.config.worker.id, [...held])
        .then((gone) => gone.forEach((taskId) => this.stopTask(taskId)))
        .catch((error: Error) => this.logger.warn(`heartbeat failed: ${error.message}`));
    }, this.config.worker.heartbeatSeconds * 1000);
    this.loop = this.dispatch();
    this.logger.log(
      `worker ${this.config.worker.id} takes cluster "${this.config.worker.cluster}" tasks, ${this.config.worker.concurrency} at a time`,
    );
  }

  /**
   * SIGTERM: takes nothing more, lets the running tasks finish for the grace
   * (`KILN_WORKER_SHUTDOWN_GRACE_SECONDS`, heartbeats going on meanwhile so that no one thinks
   * them lost), then kills what still runs and hands it back to the queue.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    this.sleeper.stop();
    this.wake();
    await this.loop;
    try {
      const inFlight = [...this.active.values()];
      if (inFlight.length === 0) return;
      const graceMs = this.config.worker.shutdownGraceSeconds * 1000;
      this.logger.log(
        `stopping: waiting up to ${graceMs / 1000} s for ${inFlight.length} running tasks`,
      );
      if (await settledWithin(inFlight, graceMs)) return;
      // Grace over: what still runs is killed and handed back to the queue by its runner.
      await this.runner.stopAll();
      if (!(await settledWithin([...this.active.values()], HAND_BACK_WAIT_MS))) {
        this.logger.warn(
          'tasks still ending after the hand-back; their heartbeat lapse re-queues them',
        );
      }
      for (const { containerId } of await this.ownContainers()) {
        await this.docker.remove(containerId);
      }
    } catch (error) {
      this.logger.warn(`stopping: ${(error as Error).message}`);
    } finally {
      clearInterval(this.heartbeat);
      await this.runner.settled();
    }
  }

  private async dispatch(): Promise<void> {
    while (!this.stopping) {
      const free = this.config.worker.concurrency - this.active.size;
      if (free <= 0 && this.settled.length === 0) {
        await this.idle();
        continue;
      }
      let jobs: ClaimedJob[];
      const settled = this.settled;
      this.settled = [];
      try {
        jobs = await this.taskQueues.claim(
          this.config.worker.cluster,
          this.config.worker.id,
          Math.max(free, 0),
          settled,
        );
      } catch (error) {
        this.settled.push(...settled);
        this.logger.warn(`cannot claim jobs: ${(error as Error).message}`);
        await this.idle();
        continue;
      }
      for (const job of jobs) this.start(job);
      // Fewer than asked for: the queues are drained until a job arrives (or a slot frees).
      if (jobs.length < free) await this.idle();
    }
    // Whatever settled last goes too; a claim left behind only costs a harmless re-delivery.
    if (this.settled.length > 0) {
      await this.taskQueues
        .claim(this.config.worker.cluster, this.config.worker.id, 0, this.settled)
        .catch(() => undefined);
    }
  }

  private start(job: ClaimedJob): void {
    const key = job.taskId;
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

  private async handle(job: ClaimedJob): Promise<void> {
    const data = parseTaskJob(parseJson(job.data));
    if (!data || data.taskId !== job.taskId) {
      this.logger.warn(`dropped job ${job.taskId} with invalid data`);
      this.settled.push(job.taskId);
      return;
    }
    // A take that throws (Postgres away for a minute) keeps its claim: the reconciler re-queues.
    const task = await this.takeWithRetry(data.taskId);
    this.settled.push(job.taskId);
    if (!task) return;
    // Taken as the worker began to stop: not run here, back to the queue at once.
    if (this.stopping) {
      await this.runner.handBack(task);
      return;
    }
    await this.runner.run(task);
  }

  /** Postgres restarting should not lose a delivered job: retry the take for about a minute. */
  private async takeWithRetry(taskId: string) {
    return this.sleeper.retry(
      () => this.lifecycle.take(taskId, this.config.worker.id),
      (_error, tries) => tries < TAKE_TRIES,
      () => TAKE_RETRY_MS,
    );
  }

  /**
   * What a worker restarted under the same id does before it takes anything, instead of leaving
   * its earlier life's tasks to the heartbeat lapse:
   * 1. it records the outcomes that life kept in its journal (Postgres was away when they ended);
   * 2. a task whose container exited meanwhile is finished as the container ended (not run again),
   *    with a note that its last output was not read;
   * 3. every other task it held is released to the queue, and every container it had is removed;
   * 4. jobs it had claimed in Redis but not taken are queued again.
   * The worker waited for Postgres before it got here (it starts only once it is reachable).
   */
  private async recoverEarlierLife(): Promise<void> {
    const workerId = this.config.worker.id;
    await this.outcomes.replay();
    const held = new Map(
      (await this.lifecycle.heldBy(workerId)).map((task) => [task.id, task.attempt]),
    );
    let finished = 0;
    for (const { containerId, info, taskId, attempt } of await this.ownContainers()) {
      if (info && taskId && held.get(taskId) === attempt && hasExited(info.State)) {
        held.delete(taskId);
        const ended = exitedOutcome(
          {
            exitCode: info.State.ExitCode,
            oomKilled: info.State.OOMKilled,
            startedAt: info.State.StartedAt,
            finishedAt: info.State.FinishedAt,
          },
          await this.logs.size(taskId),
        );
        await this.outcomes.record({ taskId, attempt, ...ended });
        finished++;
      }
      await this.docker.remove(containerId);
    }
    let released = 0;
    for (const [taskId, attempt] of held) {
      if (await this.lifecycle.release(taskId, attempt)) released++;
    }
    const claims = await this.taskQueues.claimsOf(workerId);
    if (claims.length > 0) {
      await this.delivery.unstamp(claims.map((claim) => claim.taskId));
      await this.taskQueues.dropClaims(claims);
    }
    if (finished + released + claims.length > 0) {
      this.logger.log(
        `recovered an earlier life: ${finished} tasks that ended meanwhile recorded, ${released} released, ${claims.length} claimed jobs queued again`,
      );
    }
  }

  /** This worker's containers (by label), each with the task and attempt it ran. */
  private async ownContainers() {
    const ids = await this.docker.containersWithLabel('kiln.worker', this.config.worker.id);
    return Promise.all(
      ids.map(async (containerId) => {
        const info = await this.docker.inspect(containerId);
        const taskId = info?.Config.Labels['kiln.task'];
        return { containerId, info, taskId, attempt: Number(info?.Config.Labels['kiln.attempt']) };
      }),
    );
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

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Whether every promise settled within `ms`. */
async function settledWithin(promises: Promise<unknown>[], ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.allSettled(promises).then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
