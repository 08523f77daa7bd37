import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import {
  DEFAULT_CLUSTER,
  FieldReader,
  JsonObject,
  KilnException,
  RecentValues,
  checkClusterName,
} from '@kiln/common';
import { KILN_CONFIG, KilnConfig, ProjectQuotas, QUOTA_MAX } from '@kiln/config';

export type QuotaName = keyof ProjectQuotas;

/** Each quota's name in the API (`GET/PUT …/quotas`) and in its 429 `msg`. */
export const QUOTA_FIELDS: Record<QuotaName, string> = {
  queuedTasks: 'queued_tasks',
  schedules: 'schedules',
  webhooks: 'webhooks',
  logDrains: 'log_drains',
  triggersPerCode: 'triggers_per_code',
  logFollowers: 'log_followers',
  invokes: 'invokes',
};

/** What a quota counts, for its 429 `msg`. */
const COUNTED: Record<QuotaName, string> = {
  queuedTasks: 'queued tasks',
  schedules: 'live schedules',
  webhooks: 'webhook subscriptions',
  logDrains: 'log drains',
  triggersPerCode: 'live trigger URLs per code',
  logFollowers: 'live log followers (?follow=1) per API process',
  invokes: 'invokes waiting for their task per API process',
};

/**
 * How long a project's grants and quotas are reused by an API process. A grant, revoke or quota
 * change applies at once in the process that made it and within this long in the others.
 */
export const PROJECT_LIMITS_CACHE_MS = 2000;
const PROJECT_LIMITS_CACHE_MAX = 10_000;

/** A project's granted clusters (beside `default`) and its quotas, overrides applied. */
export interface ProjectPolicy {
  clusters: ReadonlySet<string>;
  quotas: ProjectQuotas;
  /** The admin's overrides alone. */
  overrides: Partial<ProjectQuotas>;
}

export interface GrantedCluster {
  cluster: string;
  grantedAt: Date;
}

/** Whether a project whose grants are `granted` may queue to `cluster`: `default` needs none. */
export function mayQueueTo(cluster: string, granted: { has(cluster: string): boolean }): boolean {
  return cluster === DEFAULT_CLUSTER || granted.has(cluster);
}

/** 429 when a project holding `held` would pass its `name` quota by adding `adding` more. */
export function checkQuota(name: QuotaName, limit: number, held: number, adding = 1): void {
  if (held + adding > limit) {
    throw KilnException.quotaExceeded(
      `Quota exceeded: ${QUOTA_FIELDS[name]} is ${limit} (at most ${limit} ${COUNTED[name]}; the project has ${held})`,
    );
  }
}

/**
 * Per-project quota overrides as the admin sends them (`{"queued_tasks": 5000}`, null clears one):
 * an unknown name or a value that is not a whole number from 0 to `QUOTA_MAX` is a 400.
 */
export function parseQuotaOverrides(body: JsonObject): Partial<Record<QuotaName, number | null>> {
  const known = new Set(Object.values(QUOTA_FIELDS));
  const unknown = Object.keys(body).filter((key) => !known.has(key) && key !== 'oauth');
  if (unknown.length > 0) {
    throw KilnException.badRequest(
      `unknown quota ${unknown.map((key) => `"${key}"`).join(', ')} (known: ${[...known].join(', ')})`,
    );
  }
  const read = new FieldReader(body);
  const changes: Partial<Record<QuotaName, number | null>> = {};
  for (const [name, field] of Object.entries(QUOTA_FIELDS) as [QuotaName, string][]) {
    if (!(field in body)) continue;
    changes[name] = body[field] === null ? null : read.int(field, { min: 0, max: QUOTA_MAX })!;
  }
  return changes;
}

/**
 * Which clusters a project may queue to and how much it may hold. Grants and quotas are read in
 * one query and reused for {@link PROJECT_LIMITS_CACHE_MS}, so the task create path pays for them
 * at most once per project every two seconds (and not at all for `default`-only requests'
 * clusters).
 */
@Injectable()
export class ProjectLimits {
  private readonly recent = new RecentValues<ProjectPolicy>(
    PROJECT_LIMITS_CACHE_MS,
    PROJECT_LIMITS_CACHE_MAX,
  );

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    @InjectDataSource() private readonly db: DataSource,
  ) {}

  /** 403, writing nothing, unless each of `clusters` is `default` or granted to the project. */
  async checkClusters(projectId: string, clusters: Iterable<string>): Promise<void> {
    const asked = [...new Set(clusters)].filter((cluster) => cluster !== DEFAULT_CLUSTER);
    if (asked.length === 0) return;
    const { clusters: granted } = await this.policyOf(projectId);
    const refused = asked.find((cluster) => !mayQueueTo(cluster, granted));
    if (refused !== undefined) {
      throw KilnException.forbidden(
        `cluster "${refused}" is not granted to this project (the operator grants clusters; "default" needs no grant)`,
      );
    }
  }

  /** The project's `name` quota: its override, else the operator's setting. */
  async quota(projectId: string, name: QuotaName): Promise<number> {
    return (await this.policyOf(projectId)).quotas[name];
  }

  async policyOf(projectId: string): Promise<ProjectPolicy> {
    const cached = this.recent.get(projectId);
    if (cached) return cached;
    const [row] = await this.db.query<{ quotas: Record<string, number>; clusters: string[] }[]>(
      `SELECT p.quotas,
              coalesce(array_agg(c.cluster) FILTER (WHERE c.cluster IS NOT NULL), '{}') AS clusters
         FROM projects p LEFT JOIN project_clusters c ON c.project_id = p.id
        WHERE p.id = $1
        GROUP BY p.id`,
      [projectId],
    );
    const overrides: Partial<ProjectQuotas> = {};
    for (const [name, field] of Object.entries(QUOTA_FIELDS) as [QuotaName, string][]) {
      const value = row?.quotas[field];
      if (typeof value === 'number') overrides[name] = value;
    }
    const policy: ProjectPolicy = {
      clusters: new Set(row?.clusters ?? []),
      quotas: { ...this.config.quotas, ...overrides },
      overrides,
    };
    this.recent.set(projectId, policy);
    return policy;
  }

  /** The project's quotas as they apply now (read afresh, not from the cache). */
  async quotasOf(projectId: string): Promise<ProjectPolicy> {
    await this.requireProject(projectId);
    this.recent.delete(projectId);
    return this.policyOf(projectId);
  }

  /** The clusters granted to the project, oldest grant first (`default` is implied). */
  async grants(projectId: string): Promise<GrantedCluster[]> {
    await this.requireProject(projectId);
    const rows = await this.db.query<{ cluster: string; created_at: Date }[]>(
      `SELECT cluster, created_at FROM project_clusters WHERE project_id = $1
        ORDER BY created_at, cluster`,
      [projectId],
    );
    return rows.map((row) => ({ cluster: row.cluster, grantedAt: row.created_at }));
  }

  /** Lets the project queue to `cluster`; granting it again changes nothing. */
  async grant(projectId: string, cluster: string): Promise<void> {
    this.checkGrantable(cluster);
    await this.requireProject(projectId);
    await this.db.query(
      `INSERT INTO project_clusters (project_id, cluster) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
      [projectId, cluster],
    );
    this.recent.delete(projectId);
  }

  /**
   * Stops the project queueing to `cluster` (tasks, schedule changes, trigger URLs): at once in
   * this process, within {@link PROJECT_LIMITS_CACHE_MS} in the others. What is already queued
   * there stays.
   */
  async revoke(projectId: string, cluster: string): Promise<void> {
    this.checkGrantable(cluster);
    await this.requireProject(projectId);
    const [, count] = await this.db.query<[unknown, number]>(
      `DELETE FROM project_clusters WHERE project_id = $1 AND cluster = $2`,
      [projectId, cluster],
    );
    this.recent.delete(projectId);
    if (!count) throw KilnException.notFound(`cluster "${cluster}" is not granted to this project`);
  }

  /** Sets (a number) or clears (null) the project's quota overrides; returns its policy. */
  async setQuotas(
    projectId: string,
    changes: Partial<Record<QuotaName, number | null>>,
  ): Promise<ProjectPolicy> {
    await this.requireProject(projectId);
    const set: Record<string, number> = {};
    const cleared: string[] = [];
    for (const [name, value] of Object.entries(changes) as [QuotaName, number | null][]) {
      if (value === null) cleared.push(QUOTA_FIELDS[name]);
      else set[QUOTA_FIELDS[name]] = value;
    }
    await this.db.query(
      `UPDATE projects SET quotas = (quotas - $2::text[]) || $3::jsonb, updated_at = now()
        WHERE id = $1`,
      [projectId, cleared, JSON.stringify(set)],
    );
    this.recent.delete(projectId);
    return this.policyOf(projectId);
  }

  private checkGrantable(cluster: string): void {
    checkClusterName(cluster);
    if (cluster === DEFAULT_CLUSTER) {
      throw KilnException.badRequest('cluster "default" is every project\'s: it needs no grant');
    }
  }

  private async requireProject(projectId: string): Promise<void> {
    const rows = await this.db.query<unknown[]>(`SELECT 1 FROM projects WHERE id = $1`, [
      projectId,
    ]);
    if (rows.length === 0) throw KilnException.notFound('Project not found');
  }
}
