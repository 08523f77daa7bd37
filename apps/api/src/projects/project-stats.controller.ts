import { Controller, Get, Param, Query } from '@nestjs/common';
import { formatTime } from '@kiln/common';
import { ProjectStats, ProjectStatsService, parseProjectStatsQuery } from '@kiln/tasks';
import { IdPipe } from '../http/params';

/** The overview as answered: IronWorker-style snake_case, RFC3339 times, ages in seconds. */
function projectStatsJson(stats: ProjectStats, now = Date.now()) {
  return {
    start: formatTime(stats.start),
    end: formatTime(stats.end),
    bucket_seconds: stats.bucketSeconds,
    codes: stats.codes.map((code) => ({ code_name: code.codeName, ...code.counts })),
    series: stats.series.map((bucket) => ({ ...bucket, start: formatTime(bucket.start) })),
    clusters: stats.clusters.map((cluster) => ({
      cluster: cluster.cluster,
      queued: cluster.queued,
      oldest_queued_at: cluster.oldestQueuedAt ? formatTime(cluster.oldestQueuedAt) : null,
      oldest_queued_seconds: cluster.oldestQueuedAt
        ? Math.max(0, Math.floor((now - cluster.oldestQueuedAt.getTime()) / 1000))
        : 0,
      running: cluster.running,
    })),
    running: stats.running,
  };
}

/** `GET /2/projects/{pid}/stats`: the dashboard's overview (docs/api.md, "Project stats"). */
@Controller('2/projects/:projectId/stats')
export class ProjectStatsController {
  constructor(private readonly projectStats: ProjectStatsService) {}

  @Get()
  async stats(
    @Param('projectId', IdPipe) projectId: string,
    @Query() query: Record<string, unknown>,
  ) {
    return projectStatsJson(await this.projectStats.read(projectId, parseProjectStatsQuery(query)));
  }
}
