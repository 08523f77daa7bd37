import { Inject, Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Metric, Registry } from 'prom-client';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';

/** Which Kiln process exposes the registry: each shows its own figures (and Node's). */
export type ProcessRole = 'api' | 'worker' | 'scheduler';

/** How a task came to be queued (`kiln_tasks_created_total{source}`). */
export type TaskSource = 'api' | 'schedule' | 'trigger' | 'retry';

/**
 * What labels a task's counters: never its id, payload or anything secret. `project` (an id) and
 * `code` (a name) are left out when KILN_METRICS_PROJECT_LABELS=0 (many projects: cardinality).
 */
export interface TaskLabels {
  projectId: string;
  codeName: string;
  cluster: string;
  priority: number;
}

/** Seconds: from tens of milliseconds to hours. */
const WAIT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400];
const RUN_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 14400, 86400];
const START_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30];
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const LAG_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400];

/**
 * Kiln's Prometheus metrics (prom-client), one registry per process. Every process exposes Node's
 * own figures (`process_*`, `nodejs_*`), `kiln_dependency_up` and the metrics of its role; the
 * rest are made but not shown. With KILN_METRICS=0 nothing is counted or served.
 *
 * Counters are counted where the thing happens: a task created in the API, by a schedule, a
 * trigger or an automatic retry; finished in the worker, the API (cancel) or the reconciler.
 */
@Injectable()
export class KilnMetrics {
  readonly enabled: boolean;
  readonly registry = new Registry();
  private readonly projectLabels: boolean;
  private readonly refreshers: (() => Promise<void> | void)[] = [];

  readonly tasksCreated: Counter<string>;
  readonly tasksFinished: Counter<string>;
  readonly queueWait: Histogram<string>;
  readonly runDuration: Histogram<string>;
  readonly containerStart: Histogram<string>;
  readonly hotContainers: Gauge<string>;
  readonly hotContainerStart: Histogram<string>;
  readonly hotContainerTasks: Histogram<string>;
  readonly queueDepth: Gauge<string>;
  readonly queueOldestAge: Gauge<string>;
  readonly workerSlots: Gauge<string>;
  readonly imagePulls: Counter<string>;
  readonly webhookDeliveries: Counter<string>;
  readonly webhookLag: Histogram<string>;
  readonly webhookBacklog: Gauge<string>;
  readonly webhookBacklogOldest: Gauge<string>;
  readonly logDrainDelivered: Counter<string>;
  readonly logDrainDropped: Counter<string>;
  readonly logDrainFailures: Counter<string>;
  readonly scheduleFires: Counter<string>;
  readonly schedulerLeader: Gauge<string>;
  readonly httpRequests: Counter<string>;
  readonly httpDuration: Histogram<string>;
  readonly dependencyUp: Gauge<string>;

  constructor(@Inject(KILN_CONFIG) config: KilnConfig) {
    this.enabled = config.metrics.enabled;
    this.projectLabels = config.metrics.projectLabels;
    const task = this.projectLabels
      ? ['project', 'code', 'cluster', 'priority']
      : ['cluster', 'priority'];
    const none: Registry[] = [];
    this.tasksCreated = new Counter({
      name: 'kiln_tasks_created_total',
      help: 'Tasks queued, by where they came from (api, schedule, trigger, retry).',
      labelNames: [...task, 'source'],
      registers: none,
    });
    this.tasksFinished = new Counter({
      name: 'kiln_tasks_finished_total',
      help: 'Tasks that reached a final status (complete, error, timeout, killed, cancelled).',
      labelNames: [...task, 'status'],
      registers: none,
    });
    this.queueWait = new Histogram({
      name: 'kiln_task_queue_wait_seconds',
      help: 'From the time a task was due (queued, or its delay over) to its container running.',
      labelNames: ['cluster'],
      buckets: WAIT_BUCKETS,
      registers: none,
    });
    this.runDuration = new Histogram({
      name: 'kiln_task_run_duration_seconds',
      help: "From the container's start to its exit, by final status.",
      labelNames: ['cluster', 'status'],
      buckets: RUN_BUCKETS,
      registers: none,
    });
    this.containerStart = new Histogram({
      name: 'kiln_container_start_seconds',
      help: 'From the create request to the container started (files, attach and start included).',
      buckets: START_BUCKETS,
      registers: none,
    });
    this.hotContainers = new Gauge({
      name: 'kiln_hot_containers',
      help: "This worker's hot containers by state: starting, busy (running a task) or idle.",
      labelNames: ['state'],
      registers: none,
    });
    this.hotContainerStart = new Histogram({
      name: 'kiln_hot_container_start_seconds',
      help: 'From the create request to a hot container listening on its socket.',
      buckets: START_BUCKETS,
      registers: none,
    });
    this.hotContainerTasks = new Histogram({
      name: 'kiln_hot_container_tasks',
      help: 'Tasks a hot container ran before it was stopped (its reuse).',
      buckets: [0, 1, 2, 5, 10, 50, 100, 500, 1000, 10_000, 100_000],
      registers: none,
    });
    this.queueDepth = new Gauge({
      name: 'kiln_queue_depth',
      help: 'Queued tasks that are due, of codes not paused (scheduler leader, every few seconds).',
      labelNames: ['cluster', 'priority'],
      registers: none,
    });
    this.queueOldestAge = new Gauge({
      name: 'kiln_queue_oldest_age_seconds',
      help: 'How long the longest-waiting due task of the cluster has waited (0: none waits).',
      labelNames: ['cluster'],
      registers: none,
    });
    this.workerSlots = new Gauge({
      name: 'kiln_worker_slots',
      help: "This worker's task slots (KILN_WORKER_CONCURRENCY) by state: busy or free.",
      labelNames: ['cluster', 'state'],
      registers: none,
    });
    this.imagePulls = new Counter({
      name: 'kiln_image_pulls_total',
      help: 'Image pulls by result: ok, error, too_big, stopped (no task waited for it any more).',
      labelNames: ['result'],
      registers: none,
    });
    this.webhookDeliveries = new Counter({
      name: 'kiln_webhook_deliveries_total',
      help: 'Webhook delivery attempts recorded, by result: delivered, retry, failed.',
      labelNames: ['result'],
      registers: none,
    });
    this.webhookLag = new Histogram({
      name: 'kiln_webhook_delivery_lag_seconds',
      help: 'From the event to its delivery (2xx), retries included.',
      buckets: LAG_BUCKETS,
      registers: none,
    });
    this.webhookBacklog = new Gauge({
      name: 'kiln_webhook_backlog',
      help: 'Webhook deliveries due now to endpoints not parked (scheduler leader; counted up to 100000).',
      registers: none,
    });
    this.webhookBacklogOldest = new Gauge({
      name: 'kiln_webhook_backlog_oldest_seconds',
      help: 'How long the oldest of those has been due.',
      registers: none,
    });
    this.logDrainDelivered = new Counter({
      name: 'kiln_log_drain_delivered_lines_total',
      help: 'Task output lines log drains accepted, by kind of drain: https, syslog.',
      labelNames: ['kind'],
      registers: none,
    });
    this.logDrainDropped = new Counter({
      name: 'kiln_log_drain_dropped_lines_total',
      help: 'Task output lines skipped because their drain did not take them within its buffer.',
      labelNames: ['kind'],
      registers: none,
    });
    this.logDrainFailures = new Counter({
      name: 'kiln_log_drain_failures_total',
      help: 'Batches a log drain did not accept (each retried with back-off).',
      labelNames: ['kind'],
      registers: none,
    });
    this.scheduleFires = new Counter({
      name: 'kiln_schedule_fires_total',
      help: 'Tasks queued by schedules (one per schedule and instant).',
      registers: none,
    });
    this.schedulerLeader = new Gauge({
      name: 'kiln_scheduler_leader',
      help: '1 while this scheduler replica holds the leader lease, else 0.',
      registers: none,
    });
    this.httpRequests = new Counter({
      name: 'kiln_http_requests_total',
      help: 'API requests answered, by method, route template and status.',
      labelNames: ['method', 'route', 'status'],
      registers: none,
    });
    this.httpDuration = new Histogram({
      name: 'kiln_http_request_duration_seconds',
      help: 'API request time, from its arrival to the last byte of the answer.',
      labelNames: ['method', 'route', 'status'],
      buckets: HTTP_BUCKETS,
      registers: none,
    });
    this.dependencyUp = new Gauge({
      name: 'kiln_dependency_up',
      help: 'Whether this process reaches what it needs (postgres, redis; docker on workers): 1 or 0.',
      labelNames: ['dependency'],
      registers: none,
    });
  }

  /** Registers Node's figures and the metrics `role` shows; called once by the process's module. */
  register(role: ProcessRole): void {
    if (!this.enabled || this.registry.getMetricsAsArray().length > 0) return;
    this.registerProcessMetrics();
    const shown: Record<ProcessRole, Metric<string>[]> = {
      api: [this.tasksCreated, this.tasksFinished, this.httpRequests, this.httpDuration],
      worker: [
        this.tasksCreated,
        this.tasksFinished,
        this.queueWait,
        this.runDuration,
        this.containerStart,
        this.hotContainers,
        this.hotContainerStart,
        this.hotContainerTasks,
        this.workerSlots,
        this.imagePulls,
      ],
      scheduler: [
        this.tasksCreated,
        this.tasksFinished,
        this.queueDepth,
        this.queueOldestAge,
        this.webhookDeliveries,
        this.webhookLag,
        this.webhookBacklog,
        this.webhookBacklogOldest,
        this.logDrainDelivered,
        this.logDrainDropped,
        this.logDrainFailures,
        this.scheduleFires,
        this.schedulerLeader,
      ],
    };
    for (const metric of [...shown[role], this.dependencyUp]) this.registry.registerMetric(metric);
  }

  /**
   * Runs `refresh` before each scrape, to set gauges read from elsewhere (slots, leadership,
   * dependencies). A refresh that fails leaves the gauges as they were.
   */
  beforeScrape(refresh: () => Promise<void> | void): void {
    if (this.enabled) this.refreshers.push(refresh);
  }

  /**
   * The process's own figures, read when scraped and costing nothing between scrapes. Not
   * prom-client's `collectDefaultMetrics`: its observers (garbage collections, event loop) cost
   * the API about 7 % more CPU per created task (docs/benchmarks.md, "metrics").
   */
  private registerProcessMetrics(): void {
    const registers = [this.registry];
    const started = Math.round(Date.now() / 1000 - process.uptime());
    new Counter({
      name: 'process_cpu_seconds_total',
      help: 'User and system CPU time of the process, in seconds.',
      registers,
      collect() {
        const { user, system } = process.cpuUsage();
        this.reset();
        this.inc((user + system) / 1e6);
      },
    });
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    gauge(
      'process_start_time_seconds',
      'Start of the process, Unix time in seconds.',
      () => started,
    );
    gauge('process_resident_memory_bytes', 'Resident memory of the process, in bytes.', () =>
      process.memoryUsage.rss(),
    );
    gauge(
      'nodejs_heap_size_used_bytes',
      "V8's heap in use, in bytes.",
      () => process.memoryUsage().heapUsed,
    );
    gauge(
      'nodejs_heap_size_total_bytes',
      "V8's heap size, in bytes.",
      () => process.memoryUsage().heapTotal,
    );
  }

  /** The text format Prometheus scrapes. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    await Promise.all(
      this.refreshers.map(async (refresh) => {
        try {
          await refresh();
        } catch {
          // Stale gauges rather than no answer: the scrape still tells the counters.
        }
      }),
    );
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** Counts `count` tasks with the same labels, queued by `source`. */
  tasksQueued(task: TaskLabels, source: TaskSource, count = 1): void {
    if (!this.enabled || count <= 0) return;
    this.tasksCreated.inc({ ...this.taskLabels(task), source }, count);
  }

  /** Counts tasks of a batch as queued by `source`, one counter update per label set. */
  tasksQueuedBatch(tasks: TaskLabels[], source: TaskSource): void {
    if (!this.enabled || tasks.length === 0) return;
    const tally = new TaskTally(this, source);
    for (const task of tasks) tally.add(task.projectId, task.codeName, task.cluster, task.priority);
    tally.flush();
  }

  /** Counts a task that reached the final status `status`. */
  taskFinished(task: TaskLabels, status: string, count = 1): void {
    if (!this.enabled || count <= 0) return;
    this.tasksFinished.inc({ ...this.taskLabels(task), status }, count);
  }

  private taskLabels(task: TaskLabels): Record<string, string> {
    const where = { cluster: task.cluster, priority: String(task.priority) };
    return this.projectLabels ? { project: task.projectId, code: task.codeName, ...where } : where;
  }
}

/**
 * Counts the tasks of a batch by label set without a string or object per task (the API's create
 * path counts up to 100 a request): runs of the same labels, as batches mostly are, cost a
 * comparison each. {@link flush} updates the counters, once per label set.
 */
export class TaskTally {
  private readonly runs = new Map<string, { task: TaskLabels; n: number }>();
  private current: TaskLabels | undefined;
  private n = 0;

  constructor(
    private readonly metrics: KilnMetrics,
    private readonly source: TaskSource,
  ) {}

  add(projectId: string, codeName: string, cluster: string, priority: number): void {
    const c = this.current;
    if (
      c !== undefined &&
      c.priority === priority &&
      c.codeName === codeName &&
      c.cluster === cluster &&
      c.projectId === projectId
    ) {
      this.n++;
      return;
    }
    this.settle();
    this.current = { projectId, codeName, cluster, priority };
    this.n = 1;
  }

  flush(): void {
    this.settle();
    for (const { task, n } of this.runs.values()) this.metrics.tasksQueued(task, this.source, n);
    this.runs.clear();
  }

  private settle(): void {
    const task = this.current;
    if (task === undefined) return;
    const key = `${task.projectId}\u0000${task.codeName}\u0000${task.cluster}\u0000${task.priority}`;
    const run = this.runs.get(key);
    if (run) run.n += this.n;
    else this.runs.set(key, { task, n: this.n });
    this.current = undefined;
    this.n = 0;
  }
}
