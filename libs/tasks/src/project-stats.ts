import { Injectable } from '@nestjs/common';
import { ProjectStatsQuery } from './project-stats-query';
import { ProjectStatsStore } from './store/project-stats-store';
import { TASK_STATUSES, TaskStatus } from './task-status';

/** The statuses a time series bucket counts: the ends charted as throughput and error rate. */
export const SERIES_STATUSES = ['complete', 'error', 'timeout', 'killed'] as const;
type SeriesStatus = (typeof SERIES_STATUSES)[number];

export interface CodeStats {
  codeName: string;
  counts: Record<TaskStatus, number>;
}

export type StatsBucket = { start: Date } & Record<SeriesStatus, number>;

export interface ClusterStats {
  cluster: string;
  queued: number;
  /** When the oldest queued task (delayed ones too) of the cluster was queued; null if none. */
  oldestQueuedAt: Date | null;
  running: number;
}

/** A project's overview: what the dashboard's first page shows. */
export interface ProjectStats extends ProjectStatsQuery {
  /** Codes with tasks created in the window, by name. */
  codes: CodeStats[];
  /** Every bucket overlapping the window, oldest first. */
  series: StatsBucket[];
  /** Clusters with tasks queued or running now, by name. */
  clusters: ClusterStats[];
  /** Tasks running now (preparing included), whenever they were created. */
  running: number;
}

/** `GET /2/projects/{pid}/stats`: counts over a window, and the project's queues now. */
@Injectable()
export class ProjectStatsService {
  constructor(private readonly store: ProjectStatsStore) {}

  async read(projectId: string, query: ProjectStatsQuery): Promise<ProjectStats> {
    const { counts, live } = await this.store.read(
      projectId,
      query.start,
      query.end,
      query.bucketSeconds,
    );
    const codes = new Map<string, CodeStats>();
    const series = bucketsOf(query);
    const bucketAt = new Map(series.map((bucket) => [bucket.start.getTime() / 1000, bucket]));
    for (const count of counts) {
      let code = codes.get(count.codeName);
      if (!code) codes.set(count.codeName, (code = { codeName: count.codeName, counts: zeros() }));
      code.counts[count.status] += count.n;
      const bucket = bucketAt.get(count.bucket);
      if (bucket && isSeriesStatus(count.status)) bucket[count.status] += count.n;
    }
    const clusters = new Map<string, ClusterStats>();
    for (const row of live) {
      let cluster = clusters.get(row.cluster);
      if (!cluster) {
        cluster = { cluster: row.cluster, queued: 0, oldestQueuedAt: null, running: 0 };
        clusters.set(row.cluster, cluster);
      }
      if (row.status === 'queued') {
        cluster.queued = row.n;
        cluster.oldestQueuedAt = row.oldest;
      } else {
        cluster.running += row.n;
      }
    }
    const byName = <T>(map: Map<string, T>) =>
      [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, value]) => value);
    const clusterList = byName(clusters);
    return {
      ...query,
      codes: byName(codes),
      series,
      clusters: clusterList,
      running: clusterList.reduce((sum, cluster) => sum + cluster.running, 0),
    };
  }
}

function zeros(): Record<TaskStatus, number> {
  return Object.fromEntries(TASK_STATUSES.map((status) => [status, 0])) as Record<
    TaskStatus,
    number
  >;
}

function isSeriesStatus(status: TaskStatus): status is SeriesStatus {
  return (SERIES_STATUSES as readonly string[]).includes(status);
}

/** The window's buckets, empty: each starts at a multiple of the bucket size (epoch seconds). */
export function bucketsOf({ start, end, bucketSeconds }: ProjectStatsQuery): StatsBucket[] {
  const buckets: StatsBucket[] = [];
  const first = Math.floor(start.getTime() / 1000 / bucketSeconds) * bucketSeconds;
  for (let at = first; at * 1000 < end.getTime(); at += bucketSeconds) {
    buckets.push({ start: new Date(at * 1000), complete: 0, error: 0, timeout: 0, killed: 0 });
  }
  return buckets;
}
