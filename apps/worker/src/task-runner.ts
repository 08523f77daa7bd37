import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { CodeRevision, CodesService, HotSetting } from '@kiln/codes';
import {
  RecentValues,
  Sleeper,
  SpanKind,
  contextOf,
  currentTraceparent,
  inSpan,
  withTimeout,
} from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { isDatabaseUnavailable } from '@kiln/database';
import { DockerEngine, FrameDemuxer, ImageFacts, tarArchive } from '@kiln/docker';
import { ConfirmedImage, ImageAccess } from '@kiln/images';
import { KilnMetrics } from '@kiln/metrics';
import { TaskLogFeed } from '@kiln/redis';
import { LogChunk, Task, TaskLifecycle, TaskLogStore, TaskOutcome } from '@kiln/tasks';
import {
  CONTRACT_PATHS,
  containerSpec,
  contractArchive,
  contractFileContents,
  taskLimits,
  zipCommand,
} from './container-contract';
import { ContainerLimits } from './container-limits';
import { HotAnswer, HotContainer } from './hot/hot-container';
import { HotPool } from './hot/hot-pool';
import { ImagePuller } from './image-puller';
import { OutcomeRecorder } from './outcome-recorder';
import { hotVerdict, limitHint, StopReason, verdict } from './outcome';
import { TaskFiles } from './task-files';
import { TaskLogWriter } from './task-log-writer';
import { ZipPackages } from './zip-packages';

/** How long output may keep draining after the container exited. */
const OUTPUT_DRAIN_MS = 10_000;
/** How long after its answer a hot container has to write its end fences. */
const FENCE_GRACE_MS = 2000;
/** Revisions never change: this many are remembered, sparing a query per task. */
const REVISIONS_KEPT = 1000;

interface Running {
  attempt: number;
  containerId?: string;
  /** Its container has exited (or it ended before one ran): a shutdown no longer stops it. */
  exited?: boolean;
  /** An outcome was recorded for it (maybe into the journal): it is never handed back. */
  recorded?: boolean;
  stoppedBy?: StopReason;
  /** Aborted when the task is stopped while it waits for its image. */
  preparing: AbortController;
}

/** Why a task stopped waiting for its image: its pull deadline passed. */
class PullTimeout extends Error {
  override name = 'PullTimeout';
}

/**
 * Runs one taken task (status `preparing`) to its final status: image, container, output, exit.
 * Every status write is a compare-and-set on the task's attempt, so a task that was released or
 * taken over meanwhile is left alone.
 */
@Injectable()
export class TaskRunner implements OnApplicationShutdown {
  private readonly logger = new Logger(TaskRunner.name);
  private readonly running = new Map<string, Running>();
  private readonly removals = new Set<Promise<void>>();
  private readonly revisions = new RecentValues<CodeRevision>(Infinity, REVISIONS_KEPT);
  private readonly sleeper = new Sleeper();
  /** Whether hot codes run hot on this worker ({@link hotAllowed}); the settings do not change. */
  private readonly hotAllowed: boolean;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly docker: DockerEngine,
    private readonly access: ImageAccess,
    private readonly images: ImagePuller,
    private readonly codes: CodesService,
    private readonly lifecycle: TaskLifecycle,
    private readonly logs: TaskLogStore,
    private readonly feed: TaskLogFeed,
    private readonly files: TaskFiles,
    private readonly outcomes: OutcomeRecorder,
    private readonly limits: ContainerLimits,
    private readonly metrics: KilnMetrics,
    private readonly hot: HotPool,
    private readonly zips: ZipPackages,
  ) {
    this.hotAllowed = hotAllowed(config.container);
  }

  /** Ids of the tasks this worker is running now. */
  runningTaskIds(): string[] {
    return [...this.running.keys()];
  }

  async run(task: Task): Promise<void> {
    const state: Running = { attempt: task.attempt, preparing: new AbortController() };
    this.running.set(task.id, state);
    try {
      // The task's trace, from the span that created it (docs/operations.md, "Traces").
      await inSpan(
        'kiln.task.run',
        {
          kind: SpanKind.CONSUMER,
          parent: contextOf(task.traceparent),
          attributes: {
            'kiln.task_id': task.id,
            'kiln.project_id': task.projectId,
            'kiln.code': task.codeName,
            'kiln.attempt': task.attempt,
            'kiln.worker': this.config.worker.id,
          },
        },
        () => this.execute(task, state),
      );
    } finally {
      state.exited = true;
      this.running.delete(task.id);
    }
    // Stopped by the worker's shutdown before it ended: back to the queue (a compare-and-set on
    // the attempt, so a task that ended meanwhile stays ended), to run again elsewhere.
    if (state.stoppedBy === 'shutdown' && !state.recorded && (await this.handBack(task))) {
      this.logger.log(`task ${task.id} handed back to the queue`);
    }
  }

  /** Puts a task this worker holds back in the queue (at shutdown); false when it was not held. */
  async handBack(task: Task): Promise<boolean> {
    try {
      return await this.lifecycle.release(task.id, task.attempt);
    } catch (error) {
      // Postgres away: the heartbeat lapse re-queues it (docs/architecture.md).
      this.logger.warn(`task ${task.id} not handed back: ${(error as Error).message}`);
      return false;
    }
  }

  /**
   * At shutdown, once the grace is over: stops every task that has not ended (kills its
   * container, or stops its wait for the image). No outcome is recorded for those; each `run`
   * hands its task back to the queue. Tasks already ending (container exited, outcome being
   * recorded) or already stopped for another reason (timeout, cancel) end as they would have.
   */
  async stopAll(): Promise<void> {
    await Promise.all(
      [...this.running.keys()].map((taskId) =>
        this.stop(taskId, 'shutdown').catch((error: Error) =>
          this.logger.warn(`task ${taskId} not stopped: ${error.message}`),
        ),
      ),
    );
  }

  /** Waits for containers still being removed (at shutdown). */
  async settled(): Promise<void> {
    await Promise.all([...this.removals]);
  }

  /**
   * Kills a running task's container; `run` then records `reason` as the task's status. A task
   * still waiting for its image stops waiting at once (its slot is free), the pull going on only
   * for other tasks waiting for it.
   */
  async stop(taskId: string, reason: StopReason): Promise<void> {
    const state = this.running.get(taskId);
    if (!state) return;
    if (reason === 'shutdown' && (state.exited || state.stoppedBy)) return;
    state.stoppedBy ??= reason;
    state.preparing.abort(new Error(`task ${reason}`));
    if (state.containerId) await this.docker.kill(state.containerId);
  }

  private async execute(task: Task, state: Running): Promise<void> {
    const revision = await this.revision(task.codeRevisionId);
    if (!revision) {
      await this.fail(task, 'The code revision of this task no longer exists');
      return;
    }
    const prepared = await inSpan(
      'kiln.image.pull',
      { attributes: { 'kiln.image': revision.image } },
      () => this.prepareImage(task, state, revision),
    );
    if (!prepared) return;
    const { image, facts } = prepared;
    // A zip package's files are unpacked per task: such codes run cold (docs/hot.md).
    const hot = this.hotAllowed && !revision.zipDigest ? revision.hot : null;
    try {
      await inSpan(
        hot ? 'kiln.container.call' : 'kiln.container.run',
        { attributes: { 'kiln.image': image.image } },
        () =>
          hot
            ? this.runHot(task, state, { ...revision, hot }, image.image, facts.volumes)
            : this.runContainer(task, state, revision, image.image, facts.volumes),
      );
    } finally {
      this.images.release(image.pull);
    }
  }

  /**
   * The project's right to the image is decided for every task (an image already on the engine
   * grants nothing), and the digest it confirmed is what runs, once present. The registry's answer
   * and the pull together get KILN_PULL_TIMEOUT_SECONDS; a task stopped meanwhile (cancelled,
   * taken over) stops waiting at once, its status written by whoever stopped it. Undefined when
   * the task ends here.
   */
  private async prepareImage(
    task: Task,
    state: Running,
    revision: CodeRevision,
  ): Promise<{ image: ConfirmedImage; facts: ImageFacts } | undefined> {
    const seconds = this.config.images.pullTimeoutSeconds;
    const signal = state.preparing.signal;
    const deadline = setTimeout(
      () => state.preparing.abort(new PullTimeout(`Image pull timed out after ${seconds} s`)),
      seconds * 1000,
    );
    try {
      const image = await this.access.confirm(task.projectId, revision.image, signal);
      return { image, facts: await this.images.acquire(image, signal) };
    } catch (error) {
      if (state.stoppedBy) return undefined;
      const reason: unknown = signal.aborted ? signal.reason : error;
      await this.fail(
        task,
        reason instanceof PullTimeout
          ? `${reason.message} (image ${revision.image})`
          : `Could not pull image ${revision.image}: ${(reason as Error).message}`,
      );
      return undefined;
    } finally {
      clearTimeout(deadline);
    }
  }

  private async runContainer(
    task: Task,
    state: Running,
    revision: CodeRevision,
    image: string,
    imageVolumes: string[],
  ): Promise<void> {
    if (state.stoppedBy) return; // cancelled while the image was pulled
    const bind = this.config.container.contractDelivery === 'bind';
    let filesDir: string | undefined;
    if (bind) {
      try {
        filesDir = this.files.write(task.id, task.attempt, contractFileContents(task, revision));
      } catch (error) {
        await this.removeFiles(task);
        await this.fail(task, `Could not write the task's files: ${(error as Error).message}`);
        return;
      }
    }
    if (revision.zipDigest && !(await this.unpackZip(task, state, revision, filesDir))) return;
    let containerId: string;
    const creating = performance.now();
    try {
      const spec = containerSpec(
        task,
        revision,
        image,
        this.config.worker.id,
        this.config.container,
        filesDir,
        taskLimits(revision, this.config.container, await this.limits.engineCpus()),
        imageVolumes,
      );
      if (revision.zipDigest) spec.cmd = zipCommand(spec.cmd ?? []);
      // The task's own spans join its trace as children of the container's run.
      const traceparent = currentTraceparent();
      if (traceparent) spec.env.push(`TRACEPARENT=${traceparent}`);
      containerId = await this.docker.create(spec);
    } catch (error) {
      if (filesDir) await this.removeFiles(task);
      await this.fail(task, `Could not create the container: ${(error as Error).message}`);
      return;
    }
    state.containerId = containerId;
    try {
      // Stopped while the container was being created (cancelled, shutdown): never started.
      if (!state.stoppedBy) {
        await this.supervise(task, state, containerId, bind ? undefined : revision, creating);
      }
    } finally {
      // The slot is free once the outcome is recorded; the removal finishes in the background,
      // and the task's files go with its container.
      const removal: Promise<void> = this.docker
        .remove(containerId)
        .catch((error: Error) => {
          this.logger.warn(
            `container ${containerId} of task ${task.id} not removed: ${error.message}`,
          );
        })
        .then(() => (filesDir ? this.removeFiles(task) : undefined))
        .finally(() => this.removals.delete(removal));
      this.removals.add(removal);
    }
  }

  /**
   * Fetches (once per host) and unpacks the revision's zip package into the task's files, where
   * {@link zipCommand} finds it. False when the task ended here: a zip needs `bind` delivery (the
   * archive API cannot write the files where the container reads them).
   */
  private async unpackZip(
    task: Task,
    state: Running,
    revision: CodeRevision,
    filesDir: string | undefined,
  ): Promise<boolean> {
    try {
      if (!filesDir) throw new Error('zip packages need KILN_CONTRACT_DELIVERY=bind');
      const zip = await this.zips.fetch(
        task.projectId,
        revision.zipDigest!,
        state.preparing.signal,
      );
      await this.zips.unpack(zip, join(filesDir, 'code'));
      return true;
    } catch (error) {
      await this.removeFiles(task);
      if (!state.stoppedBy) {
        await this.fail(task, `Could not unpack the code's zip: ${(error as Error).message}`);
      }
      return false;
    }
  }

  /**
   * Runs the task in a warm container of its code (docs/hot.md): one taken from the pool, or
   * started for it. The container goes back to the pool only when the task ended by the contract.
   */
  private async runHot(
    task: Task,
    state: Running,
    revision: CodeRevision & { hot: HotSetting },
    image: string,
    imageVolumes: string[],
  ): Promise<void> {
    if (state.stoppedBy) return; // cancelled while the image was pulled
    let container: HotContainer;
    try {
      const limits = taskLimits(revision, this.config.container, await this.limits.engineCpus());
      container = await this.hot.acquire(
        { revision, image, imageVolumes, limits },
        state.preparing.signal,
      );
    } catch (error) {
      // Stopped while it waited for a container: whoever stopped it says why.
      if (!state.stoppedBy) await this.fail(task, (error as Error).message);
      return;
    }
    if (state.stoppedBy) {
      this.hot.release(container, revision.hot, true); // it never saw the task
      return;
    }
    state.containerId = container.id;
    let released = false;
    /** The container goes back (or away) as soon as its part is over, before the outcome is stored. */
    const release = (keep: boolean): void => {
      if (released) return;
      released = true;
      // From here on the container may run another task: a late stop of this one (a heartbeat
      // that finds it ended, a cancel) must not kill it.
      state.containerId = undefined;
      container.tasksRun++;
      this.hot.release(container, revision.hot, keep);
    };
    try {
      await this.callHot(task, state, container, release);
    } finally {
      release(false);
    }
  }

  /**
   * One call: the payload, the fence, the answer, the fenced output, then the outcome. The
   * container is released (`release(keep)`, keep when it kept the contract and may take another
   * task) once its answer and end fences are in, so that it serves the next task while this one's
   * outcome is stored. As for a cold task, whose container starts before it is marked running,
   * the call starts while the task is marked running; a task cancelled meanwhile has its
   * container killed.
   */
  private async callHot(
    task: Task,
    state: Running,
    container: HotContainer,
    release: (keep: boolean) => void,
  ): Promise<void> {
    // Most hot tasks end within the first flush interval: their log goes with their outcome.
    const writer = this.logWriter(task, true);
    const fence = randomBytes(16).toString('hex');
    const progress = this.progressReporter(task);
    try {
      this.files.writePayload(container.dirs.files, task.payload);
    } catch (error) {
      await this.fail(task, `Could not write the task's payload: ${(error as Error).message}`);
      return;
    }
    container.output.begin({ fence, output: writer, progress });
    const marked = this.markRunning(task).then(async (running) => {
      if (running) {
        progress.start();
        this.observeQueueWait(task);
        return;
      }
      // Cancelled or released while preparing: the status already says why.
      state.stoppedBy ??= 'cancelled';
      await this.docker.kill(container.id);
    });
    const started = performance.now();
    const deadline = setTimeout(() => {
      this.stop(task.id, 'timeout').catch((error: Error) =>
        this.logger.warn(`timeout kill: ${error.message}`),
      );
    }, task.timeout * 1000);
    let answer: HotAnswer | undefined;
    let broke: string | undefined;
    try {
      answer = await container.call({
        taskId: task.id,
        attempt: task.attempt,
        deadline: new Date(Date.now() + task.timeout * 1000),
        fence,
        payload: task.payload,
      });
      if (!(await container.output.endedWithin(FENCE_GRACE_MS, OUTPUT_DRAIN_MS))) {
        broke = `it did not write both end fences within ${FENCE_GRACE_MS / 1000} s of its answer`;
      }
    } catch (error) {
      broke = (error as Error).message;
    } finally {
      clearTimeout(deadline);
    }
    state.exited = true;
    container.output.finish();
    const durationMs = Math.round(performance.now() - started);
    await marked.catch((error: Error) =>
      this.logger.warn(`task ${task.id} not marked running: ${error.message}`),
    );
    release(answer !== undefined && broke === undefined && state.stoppedBy === undefined);
    // Killed at shutdown before it answered: handed back by `run`, not ended.
    if (state.stoppedBy === 'shutdown' && !answer) return;
    const chunks = await writer.takeRest();
    await progress.settled();
    const { status, msg } = hotVerdict(answer, broke, container, state.stoppedBy, task.timeout);
    await this.finish(
      task,
      { status, msg, exitCode: null, durationMs, logSize: writer.size },
      chunks,
    );
  }

  /**
   * A hot task's progress lines become its `percent`: one write at a time, the latest value
   * winning, so a task that reports in a tight loop costs a handful of statements. Nothing is
   * written before `start()` (the task marked running: a percent is stored only then), what came
   * before is written at it.
   */
  private progressReporter(
    task: Task,
  ): ((percent: number) => void) & { start(): void; settled(): Promise<void> } {
    let latest: number | undefined;
    let writing: Promise<void> | undefined;
    let started = false;
    const write = (): void => {
      if (!started || writing || latest === undefined) return;
      const percent = latest;
      latest = undefined;
      writing = this.lifecycle
        .setProgress(task.id, task.attempt, percent)
        .catch((error: Error) =>
          this.logger.warn(`progress of task ${task.id} not stored: ${error.message}`),
        )
        .finally(() => {
          writing = undefined;
          write();
        });
    };
    const report = (percent: number) => {
      latest = percent;
      write();
    };
    // A write that ends starts the next (the latest value): wait for the last one.
    const settled = async () => {
      while (writing) await writing;
    };
    const start = () => {
      started = true;
      write();
    };
    return Object.assign(report, { start, settled });
  }

  private async revision(id: string): Promise<CodeRevision | null> {
    const known = this.revisions.get(id);
    if (known) return known;
    const revision = await this.codes.revision(id);
    if (revision) {
      this.revisions.set(id, revision);
    }
    return revision;
  }

  private async removeFiles(task: Task): Promise<void> {
    await this.files.remove(task.id, task.attempt).catch((error: Error) => {
      this.logger.warn(`files of task ${task.id} not removed: ${error.message}`);
    });
  }

  /**
   * Starts the container and sees it to its end. `archive` is the revision whose files must be
   * copied in first (`KILN_CONTRACT_DELIVERY=archive`); with `bind` they are mounted already.
   */
  private async supervise(
    task: Task,
    state: Running,
    containerId: string,
    archive: CodeRevision | undefined,
    creating: number,
  ): Promise<void> {
    const writer = this.logWriter(task);
    let started: number;
    let output: Promise<void>;
    try {
      if (archive) {
        await this.docker.putArchive(
          containerId,
          tarArchive(contractArchive(task, archive)),
          CONTRACT_PATHS.filesDir,
        );
      }
      const io = await this.docker.attach(containerId);
      // Caught at once: a broken stream must not become an unhandled rejection mid-run.
      output = pipeline(io, new FrameDemuxer(), writer).catch((error: Error) => {
        this.logger.warn(`output of task ${task.id} broke off: ${error.message}`);
      });
      await this.docker.start(containerId);
      started = performance.now();
      io.end(task.payload);
      if (this.metrics.enabled) this.metrics.containerStart.observe((started - creating) / 1000);
    } catch (error) {
      await this.fail(task, `Could not start the container: ${(error as Error).message}`);
      return;
    }
    if (!(await this.markRunning(task))) {
      // Cancelled or released while preparing: stop here, the status already says why.
      state.stoppedBy ??= 'cancelled';
      await this.docker.kill(containerId);
    } else {
      this.observeQueueWait(task);
    }
    const deadline = setTimeout(() => {
      this.stop(task.id, 'timeout').catch((error: Error) =>
        this.logger.warn(`timeout kill: ${error.message}`),
      );
    }, task.timeout * 1000);
    let exit;
    try {
      exit = await this.docker.wait(containerId);
    } finally {
      clearTimeout(deadline);
    }
    state.exited = true;
    // Killed at shutdown (not ended on its own just before): handed back by `run`, not ended.
    if (state.stoppedBy === 'shutdown' && exit.exitCode === 137) return;
    const durationMs = Math.round(performance.now() - started);
    await withTimeout(output, OUTPUT_DRAIN_MS, `still open after ${OUTPUT_DRAIN_MS} ms`).catch(
      (error: Error) => {
        this.logger.warn(`output of task ${task.id} not fully read: ${error.message}`);
      },
    );
    const { status, msg } = verdict(exit, state.stoppedBy, task.timeout);
    const hint = status === 'error' ? limitHint(writer.stderrTail, this.config.container) : '';
    const chunks = await writer.takeUnstored();
    await this.finish(
      task,
      { status, msg: msg + hint, exitCode: exit.exitCode, durationMs, logSize: writer.size },
      chunks,
    );
  }

  /**
   * Where a task's output goes. Stored first, then published: a chunk a live follower hears is
   * already in Postgres. A follower that misses a publish (Redis away) reads the chunk from
   * Postgres: not a failed write.
   */
  private logWriter(task: Task, holdFirstOutput = false): TaskLogWriter {
    return new TaskLogWriter(
      async (chunks) => {
        await this.logs.append(task.id, task.attempt, chunks);
        await this.feed.publish(task.id, task.attempt, chunks).catch((error: Error) => {
          this.logger.warn(`output of task ${task.id} not published: ${error.message}`);
        });
      },
      { maxBytes: this.config.tasks.maxLogBytes, holdFirstOutput },
    );
  }

  private observeQueueWait(task: Task): void {
    if (!this.metrics.enabled) return;
    // Due since run_at (its creation, or its delay's end); at least 0 whatever the clocks say.
    const waited = (Date.now() - task.runAt.getTime()) / 1000;
    this.metrics.queueWait.observe({ cluster: task.cluster }, Math.max(0, waited));
  }

  /**
   * preparing → running. Through a Postgres outage it is tried again while the container runs
   * (the outcome's compare-and-set accepts `preparing` too); false when the task was cancelled or
   * released meanwhile.
   */
  private async markRunning(task: Task): Promise<boolean> {
    return this.sleeper.retry(
      () => this.lifecycle.markRunning(task.id, task.attempt),
      (error, tries) => {
        if (!isDatabaseUnavailable(error)) return false;
        if (tries === 1) {
          this.logger.warn(`task ${task.id} not marked running yet: ${(error as Error).message}`);
        }
        return true;
      },
    );
  }

  private async fail(task: Task, msg: string): Promise<void> {
    this.logger.warn(`task ${task.id}: ${msg}`);
    await this.finish(task, { status: 'error', msg, exitCode: null, durationMs: null, logSize: 0 });
  }

  /** Records the outcome, through any Postgres outage (see {@link OutcomeRecorder}). */
  private async finish(task: Task, outcome: TaskOutcome, chunks: LogChunk[] = []): Promise<void> {
    const state = this.running.get(task.id);
    if (state) state.recorded = true;
    await inSpan('kiln.task.finish', { attributes: { 'kiln.status': outcome.status } }, () =>
      this.record(task, outcome, chunks),
    );
  }

  private async record(task: Task, outcome: TaskOutcome, chunks: LogChunk[]): Promise<void> {
    await this.outcomes.record({
      taskId: task.id,
      attempt: task.attempt,
      outcome,
      chunks,
      labels: {
        projectId: task.projectId,
        codeName: task.codeName,
        cluster: task.cluster,
        priority: task.priority,
      },
    });
  }

  /** At shutdown: waits in retry loops end at once. */
  onApplicationShutdown(): void {
    this.sleeper.stop();
  }
}

/**
 * Hot codes run hot only where their containers cannot reach past their own directories
 * (docs/hot.md, "Where hot runs"): the worker shares a filesystem with the engine (`bind`), and
 * tasks run as a numeric user that is neither root nor the worker's own (who could change or swap
 * the socket directory). Elsewhere they run cold.
 */
function hotAllowed({ contractDelivery, user }: KilnConfig['container']): boolean {
  const uid = /^(\d+)(?::\d+)?$/.exec(user)?.[1];
  return (
    contractDelivery === 'bind' &&
    uid !== undefined &&
    Number(uid) !== 0 &&
    Number(uid) !== (process.getuid?.() ?? -1)
  );
}
