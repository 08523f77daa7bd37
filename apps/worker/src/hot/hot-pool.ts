import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { CodeRevision, HotSetting } from '@kiln/codes';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { newId } from '@kiln/common';
import { DockerEngine } from '@kiln/docker';
import { KilnMetrics } from '@kiln/metrics';
import { HOT_PATHS, HOT_SOCKET_NAME, hotContainerSpec, TaskLimits } from '../container-contract';
import { TaskFiles } from '../task-files';
import { HotContainer, HotContainerBroke } from './hot-container';

/** One pool key's containers: a (project, code revision) pair. */
interface KeyPool {
  /** Most recently used last: the next task takes it, and the others can go idle for good. */
  idle: HotContainer[];
  busy: Set<HotContainer>;
  starting: number;
}

/** What a new container of a revision is made of. */
export interface HotLaunch {
  revision: CodeRevision & { hot: HotSetting };
  image: string;
  imageVolumes: string[];
  limits: TaskLimits;
}

const SWEEP_MS = 2000;
const MEMINFO_MS = 1000;

/**
 * The worker's warm containers (docs/hot.md, "The pool"), per (project, code revision): a task
 * takes an idle container of its key, or starts one within the code's `max_containers` and the
 * worker's `KILN_HOT_MAX_CONTAINERS` (stopping the least recently used idle container of another
 * key to make room), or waits for one of its key to be free. Containers go after `idle_timeout`,
 * after `max_tasks`, when they break the contract or are killed (deadline, cancel), and while the
 * host's available memory is under `KILN_HOT_MIN_AVAILABLE_MB`.
 */
@Injectable()
export class HotPool implements OnApplicationShutdown {
  private readonly logger = new Logger(HotPool.name);
  private readonly pools = new Map<string, KeyPool>();
  private readonly idleTimers = new Map<HotContainer, NodeJS.Timeout>();
  private readonly removals = new Set<Promise<void>>();
  private waiters: (() => void)[] = [];
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;
  private memory = { availableMb: Infinity, readAt: 0 };

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly docker: DockerEngine,
    private readonly files: TaskFiles,
    private readonly metrics: KilnMetrics,
  ) {
    this.sweeper = setInterval(() => {
      this.sweep().catch((error: Error) => this.logger.warn(`hot pool sweep: ${error.message}`));
    }, SWEEP_MS);
    this.sweeper.unref();
    void this.readMemory();
    metrics.beforeScrape(() => this.showCounts());
  }

  /**
   * A container of `launch`'s key for one task, busy until {@link release}. Waits while the key
   * is at its cap; `signal` ends the wait (the task was cancelled or the worker stops). Rejects
   * with {@link HotContainerBroke} when a new container could not start.
   */
  async acquire(launch: HotLaunch, signal: AbortSignal): Promise<HotContainer> {
    const key = keyOf(launch);
    for (;;) {
      signal.throwIfAborted();
      const pool = this.pool(key);
      const idle = pool.idle.pop();
      if (idle) {
        clearTimeout(this.idleTimers.get(idle));
        this.idleTimers.delete(idle);
        // One that died while it waited (its exit not yet heard) is never handed a task.
        if (idle.exited) {
          this.retire(idle);
          continue;
        }
        pool.busy.add(idle);
        return idle;
      }
      const size = pool.busy.size + pool.starting;
      if (size < launch.revision.hot.maxContainers && (this.room() || this.evictIdle(key))) {
        return this.start(pool, key, launch);
      }
      await this.turn(signal);
    }
  }

  /**
   * The task is over. `keep`: it ended by the contract, so the container may take another task,
   * unless it ran `max_tasks`, the worker is stopping, or memory is short.
   */
  release(container: HotContainer, hot: HotSetting, keep: boolean): void {
    const pool = this.pool(container.key);
    pool.busy.delete(container);
    container.lastUsed = Date.now();
    const fit = keep && !container.exited && container.tasksRun < hot.maxTasks;
    if (fit && !this.closed && !this.memoryShort()) {
      pool.idle.push(container);
      const timer = setTimeout(() => this.retireIdle(container), hot.idleTimeout * 1000);
      timer.unref();
      this.idleTimers.set(container, timer);
    } else {
      this.retire(container);
    }
    this.wake();
  }

  /** Stops every idle container and waits for all removals (at shutdown). */
  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const pool of this.pools.values()) {
      for (const container of [...pool.idle]) this.retireIdle(container);
    }
    await Promise.all([...this.removals]);
  }

  private async start(pool: KeyPool, key: string, launch: HotLaunch): Promise<HotContainer> {
    pool.starting++;
    try {
      const container = await this.launch(key, launch);
      pool.busy.add(container);
      return container;
    } finally {
      pool.starting--;
      this.dropIfEmpty(key);
      this.wake();
    }
  }

  /** Creates a container, and starts it until it listens; removed again if it does not. */
  private async launch(key: string, launch: HotLaunch): Promise<HotContainer> {
    const creating = performance.now();
    const name = newId();
    let dirs: { files: string; socket: string };
    let id: string;
    try {
      dirs = this.files.hotDirs(name, launch.revision.config);
      id = await this.docker.create(
        hotContainerSpec(
          launch.revision,
          launch.image,
          this.config.worker.id,
          this.config.container,
          dirs,
          launch.limits,
          launch.imageVolumes,
        ),
      );
    } catch (error) {
      await this.files.removeHot(name).catch(() => undefined);
      throw new HotContainerBroke(`Could not create a hot container: ${(error as Error).message}`);
    }
    const container = new HotContainer(this.docker, id, key, dirs, name);
    try {
      await container.start(this.config.hot.readySeconds * 1000, HOT_PATHS.socket);
      await this.files.freezeSocketDir(dirs.socket, HOT_SOCKET_NAME);
    } catch (error) {
      this.remove(container);
      throw new HotContainerBroke(`Could not start a hot container: ${(error as Error).message}`);
    }
    if (this.metrics.enabled) {
      this.metrics.hotContainerStart.observe((performance.now() - creating) / 1000);
    }
    // A container that dies while idle (a crash between tasks, the OOM killer) goes at once.
    void container.exit.then(() => this.retireIdle(container));
    return container;
  }

  private retireIdle(container: HotContainer): void {
    const pool = this.pools.get(container.key);
    if (!pool) return;
    const index = pool.idle.indexOf(container);
    if (index < 0) return;
    pool.idle.splice(index, 1);
    clearTimeout(this.idleTimers.get(container));
    this.idleTimers.delete(container);
    this.retire(container);
    this.wake();
  }

  private retire(container: HotContainer): void {
    if (this.metrics.enabled) this.metrics.hotContainerTasks.observe(container.tasksRun);
    this.dropIfEmpty(container.key);
    this.remove(container);
  }

  /** A key with no container left is forgotten (revisions come and go). */
  private dropIfEmpty(key: string): void {
    const pool = this.pools.get(key);
    if (pool && pool.idle.length === 0 && pool.busy.size === 0 && pool.starting === 0) {
      this.pools.delete(key);
    }
  }

  /** Removes the container (killing it) and its directories, in the background. */
  private remove(container: HotContainer): void {
    // Its directories go only once it is gone: a container still running could race the removal.
    const removal: Promise<void> = this.docker
      .remove(container.id)
      .then(
        () => this.files.removeHot(container.name),
        (error: Error) =>
          this.logger.warn(`hot container ${container.id} not removed: ${error.message}`),
      )
      .catch((error: Error) =>
        this.logger.warn(`hot container ${container.id}'s files not removed: ${error.message}`),
      )
      .finally(() => {
        this.removals.delete(removal);
        this.wake();
      });
    this.removals.add(removal);
  }

  /** Whether the worker may have one more container (those being removed count until gone). */
  private room(): boolean {
    let total = this.removals.size;
    for (const pool of this.pools.values()) {
      total += pool.idle.length + pool.busy.size + pool.starting;
    }
    return total < this.config.hot.maxContainers;
  }

  /** Stops the least recently used idle container of another key; false if there is none. */
  private evictIdle(key: string): boolean {
    let oldest: HotContainer | undefined;
    for (const [other, pool] of this.pools) {
      if (other === key) continue;
      for (const container of pool.idle) {
        if (!oldest || container.lastUsed < oldest.lastUsed) oldest = container;
      }
    }
    if (!oldest) return false;
    this.retireIdle(oldest);
    return true;
  }

  /** Resolves at the pool's next change (a container freed, stopped or failed to start). */
  private turn(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const aborted = () => {
        this.waiters = this.waiters.filter((waiter) => waiter !== woken);
        reject(signal.reason as Error);
      };
      const woken = () => {
        signal.removeEventListener('abort', aborted);
        resolve();
      };
      signal.addEventListener('abort', aborted, { once: true });
      this.waiters.push(woken);
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  /** Under memory pressure, no container waits idle. */
  private async sweep(): Promise<void> {
    await this.readMemory();
    if (!this.memoryShort()) return;
    for (const pool of [...this.pools.values()]) {
      for (const container of [...pool.idle]) this.retireIdle(container);
    }
  }

  private memoryShort(): boolean {
    return this.memory.availableMb < this.config.hot.minAvailableMb;
  }

  /** `MemAvailable` of /proc/meminfo, at most once a second; none known: no pressure. */
  private async readMemory(): Promise<void> {
    if (Date.now() - this.memory.readAt < MEMINFO_MS) return;
    this.memory.readAt = Date.now();
    const meminfo = await readFile('/proc/meminfo', 'utf8').catch(() => '');
    const kb = /^MemAvailable:\s+(\d+) kB/m.exec(meminfo)?.[1];
    this.memory.availableMb = kb === undefined ? Infinity : Number(kb) / 1024;
  }

  private showCounts(): void {
    let starting = 0;
    let busy = 0;
    let idle = 0;
    for (const pool of this.pools.values()) {
      starting += pool.starting;
      busy += pool.busy.size;
      idle += pool.idle.length;
    }
    this.metrics.hotContainers.set({ state: 'starting' }, starting);
    this.metrics.hotContainers.set({ state: 'busy' }, busy);
    this.metrics.hotContainers.set({ state: 'idle' }, idle);
  }

  private pool(key: string): KeyPool {
    let pool = this.pools.get(key);
    if (!pool) {
      pool = { idle: [], busy: new Set(), starting: 0 };
      this.pools.set(key, pool);
    }
    return pool;
  }
}

/**
 * Never shared across projects or revisions (a revision fixes command, config, env vars, limits),
 * nor across images: a tag pushed again is a new digest, and a new container.
 */
function keyOf({ revision, image }: HotLaunch): string {
  return `${revision.projectId}/${revision.id}/${image}`;
}
