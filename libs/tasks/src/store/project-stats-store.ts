import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { rowsOf } from '@kiln/database';
import { TASK_STATUSES, TaskStatus } from '../task-status';

/** Tasks of one code and status created in one bucket of the window. */
export interface StatsCount {
  codeName: string;
  status: TaskStatus;
  /** The bucket's start, epoch seconds. */
  bucket: number;
  n: number;
}

/** The project's tasks not ended in one cluster and status, and when the oldest was queued. */
export interface LiveCount {
  cluster: string;
  status: 'queued' | 'preparing' | 'running';
  n: number;
  oldest: Date | null;
}

const LIVE_STATUSES = ['queued', 'preparing', 'running'] as const;

/**
 * The SQL of `GET /2/projects/{pid}/stats`, over the list's indexes: no index of its own (each
 * would slow ingest), and a cost that follows the tasks in the window, not the project's history
 * (docs/api.md, "Project stats", has the measurements).
 */
@Injectable()
export class ProjectStatsStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /**
   * Both reads, in one transaction without JIT: the planner cannot know how many tasks a code's
   * or a cluster's branch holds and guesses hundreds of thousands, which makes Postgres compile
   * the statement (about 600 ms of JIT measured on a million tasks, for a read of 10 ms).
   */
  async read(
    projectId: string,
    start: Date,
    end: Date,
    bucketSeconds: number,
  ): Promise<{ counts: StatsCount[]; live: LiveCount[] }> {
    return this.db.transaction(async (db) => {
      await db.query('SET LOCAL jit = off');
      return {
        counts: await this.counts(db, projectId, start, end, bucketSeconds),
        live: await this.live(db, projectId),
      };
    });
  }

  /**
   * Counts per code, status and bucket of the tasks created in [start, end). The code names are
   * found by a loose scan of `tasks_project_code_status_idx` (one probe per name, however many
   * tasks), then each (code, status) reads its range of the window from the same index, index-only.
   */
  private async counts(
    db: EntityManager,
    projectId: string,
    start: Date,
    end: Date,
    bucketSeconds: number,
  ): Promise<StatsCount[]> {
    return rowsOf<StatsCount>(
      await db.query(
        `WITH RECURSIVE names AS (
           SELECT min(code_name) AS name FROM tasks WHERE project_id = $1
           UNION ALL
           SELECT (SELECT min(code_name) FROM tasks WHERE project_id = $1 AND code_name > names.name)
             FROM names WHERE names.name IS NOT NULL
         )
         SELECT names.name AS "codeName", s.status, b.bucket, b.n
           FROM names CROSS JOIN unnest($5::text[]) s(status)
           CROSS JOIN LATERAL (
             SELECT (floor(extract(epoch FROM t.created_at) / $4) * $4)::float8 AS bucket,
                    count(*)::int AS n
               FROM tasks t
              WHERE t.project_id = $1 AND t.code_name = names.name AND t.status = s.status
                AND t.created_at >= $2 AND t.created_at < $3
              GROUP BY 1) b
          WHERE names.name IS NOT NULL`,
        [projectId, start, end, bucketSeconds, TASK_STATUSES],
      ),
    );
  }

  /**
   * The project's tasks not ended, per cluster and status, with the oldest one's `created_at`.
   * Totals per status come from `tasks_project_status_created_idx` and the clusters other than
   * `default` (found by a loose scan) from `tasks_project_cluster_status_idx`, both index-only;
   * `default`'s share is the rest, and its oldest queued task a walk from the oldest queued one.
   */
  private async live(db: EntityManager, projectId: string): Promise<LiveCount[]> {
    const totals = rowsOf<Omit<LiveCount, 'cluster'>>(
      await db.query(
        `SELECT s.status, c.n, c.oldest
           FROM unnest($2::text[]) s(status)
           CROSS JOIN LATERAL (
             SELECT count(*)::int AS n, min(t.created_at) AS oldest FROM tasks t
              WHERE t.project_id = $1 AND t.status = s.status) c`,
        [projectId, LIVE_STATUSES],
      ),
    );
    const named = rowsOf<LiveCount>(
      await db.query(
        `WITH RECURSIVE clusters AS (
           SELECT min(cluster) AS name FROM tasks WHERE project_id = $1 AND cluster <> 'default'
           UNION ALL
           SELECT (SELECT min(cluster) FROM tasks
                    WHERE project_id = $1 AND cluster <> 'default' AND cluster > clusters.name)
             FROM clusters WHERE clusters.name IS NOT NULL
         )
         SELECT clusters.name AS cluster, s.status, c.n, c.oldest
           FROM clusters CROSS JOIN unnest($2::text[]) s(status)
           CROSS JOIN LATERAL (
             SELECT count(*)::int AS n, min(t.created_at) AS oldest FROM tasks t
              WHERE t.project_id = $1 AND t.cluster <> 'default' AND t.cluster = clusters.name
                AND t.status = s.status) c
          WHERE clusters.name IS NOT NULL AND c.n > 0`,
        [projectId, LIVE_STATUSES],
      ),
    );
    return [...named, ...(await this.defaultShare(db, projectId, totals, named))];
  }

  /** `default`'s share: each status's total less the other clusters' counts. */
  private async defaultShare(
    db: EntityManager,
    projectId: string,
    totals: Omit<LiveCount, 'cluster'>[],
    named: LiveCount[],
  ): Promise<LiveCount[]> {
    const result: LiveCount[] = [];
    for (const total of totals) {
      const others = named.filter((row) => row.status === total.status);
      const n = total.n - others.reduce((sum, row) => sum + row.n, 0);
      if (n <= 0) continue;
      const oldest = others.some((row) => row.oldest?.getTime() === total.oldest?.getTime())
        ? await this.oldestInDefault(db, projectId, total.status)
        : total.oldest;
      result.push({ cluster: 'default', status: total.status, n, oldest });
    }
    return result;
  }

  private async oldestInDefault(
    db: EntityManager,
    projectId: string,
    status: string,
  ): Promise<Date | null> {
    const [row] = rowsOf<{ oldest: Date | null }>(
      await db.query(
        `SELECT created_at AS oldest FROM tasks
          WHERE project_id = $1 AND status = $2 AND cluster = 'default'
          ORDER BY created_at, id LIMIT 1`,
        [projectId, status],
      ),
    );
    return row?.oldest ?? null;
  }
}
