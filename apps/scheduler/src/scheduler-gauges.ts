import { Injectable } from '@nestjs/common';
import { KilnMetrics } from '@kiln/metrics';
import { QueueFigures } from '@kiln/tasks';
import { WebhookBacklog } from '@kiln/webhooks';
import { LeaderLease } from './leader-lease';

/** Queue figures are read from Postgres at most this often, however often Prometheus scrapes. */
const QUEUE_READ_EVERY_MS = 5000;
/**
 * And no sooner than this many times the last read took: the queue figures count the queued
 * tasks, a read grows with the backlog (about 40 ms beside 150,000 queued tasks), and this keeps
 * the reads under 1 % of one Postgres core however deep the queues get; the figures are then as
 * old as that (30 s beside a backlog that takes 300 ms to count).
 */
const QUEUE_READ_COST_FACTOR = 100;

/**
 * The scheduler's gauges, set when scraped: `kiln_scheduler_leader`, and on the leader alone
 * `kiln_queue_depth{cluster,priority}`, `kiln_queue_oldest_age_seconds{cluster}` and the webhook
 * backlog (`kiln_webhook_backlog`, `kiln_webhook_backlog_oldest_seconds`) (so that
 * several replicas do not report the same queues twice; a cluster seen once stays at 0 once
 * empty, what an autoscaler wants to read).
 */
@Injectable()
export class SchedulerGauges {
  /** When the queue figures may next be read (0: at the next scrape). */
  private nextReadAt = 0;
  private readonly seenDepths = new Set<string>();
  private readonly seenClusters = new Set<string>();

  constructor(
    private readonly metrics: KilnMetrics,
    private readonly lease: LeaderLease,
    private readonly figures: QueueFigures,
    private readonly backlog: WebhookBacklog,
  ) {
    metrics.beforeScrape(() => this.refresh());
  }

  private async refresh(): Promise<void> {
    const leader = this.lease.isLeader();
    this.metrics.schedulerLeader.set(leader ? 1 : 0);
    if (!leader) {
      this.metrics.queueDepth.reset();
      this.metrics.queueOldestAge.reset();
      this.metrics.webhookBacklog.reset();
      this.metrics.webhookBacklogOldest.reset();
      this.seenDepths.clear();
      this.seenClusters.clear();
      this.nextReadAt = 0;
      return;
    }
    const startedAt = Date.now();
    if (startedAt < this.nextReadAt) return;
    this.nextReadAt = startedAt + QUEUE_READ_EVERY_MS;
    const [rows, backlog] = await Promise.all([this.figures.read(), this.backlog.read()]);
    const tookMs = Date.now() - startedAt;
    this.nextReadAt = startedAt + Math.max(QUEUE_READ_EVERY_MS, tookMs * QUEUE_READ_COST_FACTOR);
    this.metrics.webhookBacklog.set(backlog.due);
    this.metrics.webhookBacklogOldest.set(backlog.oldestSeconds);
    const depths = new Map<string, number>();
    const oldest = new Map<string, number>();
    for (const row of rows) {
      depths.set(`${row.cluster}\u0000${row.priority}`, row.depth);
      oldest.set(row.cluster, Math.max(oldest.get(row.cluster) ?? 0, row.oldestSeconds));
    }
    for (const key of depths.keys()) this.seenDepths.add(key);
    for (const cluster of oldest.keys()) this.seenClusters.add(cluster);
    for (const key of this.seenDepths) {
      const [cluster, priority] = key.split('\u0000');
      this.metrics.queueDepth.set({ cluster, priority }, depths.get(key) ?? 0);
    }
    for (const cluster of this.seenClusters) {
      this.metrics.queueOldestAge.set({ cluster }, oldest.get(cluster) ?? 0);
    }
  }
}
