import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Client } from 'pg';
import { ROOT } from './processes';

// Jest-free: the benchmarks (bench/, plain node) import this file too.

/** Kiln's migration script, relative to the folder that holds dist/. */
export const MIGRATE = 'dist/libs/database/src/migrate.js';

/**
 * Applies Kiln's migrations to `databaseUrl` with the built migrate.js under `root` (the
 * repository's dist/ unless a copy of it is given); `env` adds to the environment it runs in.
 */
export function migrate(databaseUrl: string, root = ROOT, env: Record<string, string> = {}): void {
  execFileSync(process.execPath, [join(root, MIGRATE)], {
    cwd: ROOT,
    // Migrations run on DATABASE_DIRECT_URL when it is set: the database named, here.
    env: { ...process.env, ...env, DATABASE_URL: databaseUrl, DATABASE_DIRECT_URL: databaseUrl },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Runs `work` with a connection of its own to `url`, closed afterwards. */
export async function withClient<T>(url: string, work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/**
 * A database of a suite's own on the test server (for suites that run a stack of their own, out
 * of the shared one's way): `create()` makes and migrates it, `drop()` removes it again.
 */
export class OwnDatabase {
  readonly name: string;
  readonly url: string;
  private readonly server: string;

  constructor(prefix: string) {
    this.name = `${prefix}_${randomBytes(3).toString('hex')}`;
    const server = new URL(process.env.TEST_DATABASE_URL!);
    this.server = server.toString();
    server.pathname = `/${this.name}`;
    this.url = server.toString();
  }

  async create(): Promise<void> {
    await withClient(this.server, (server) => server.query(`CREATE DATABASE ${this.name}`));
    migrate(this.url);
  }

  /**
   * Drops it, ending its connections. An autovacuum worker on it at that moment is not the role's
   * to end (PostgreSQL 15 refuses the FORCE with insufficient_privilege, 42501); it is gone a moment
   * later, so the drop is tried again a few times.
   */
  async drop(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await withClient(this.server, (server) =>
          server.query(`DROP DATABASE IF EXISTS ${this.name} WITH (FORCE)`),
        );
        return;
      } catch (error) {
        if ((error as { code?: string }).code !== '42501' || attempt === 10) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }
}

/**
 * What a project holds, as far as requests write it: for each table the project's rows (only the
 * columns a request sets, not those the worker, scheduler or delivery loop move on their own),
 * hashed. Equal before and after a request means the request wrote nothing of the project.
 */
const REQUEST_WRITTEN: Record<string, string> = {
  projects: 'id, name',
  tokens: 'id, name, role, expires_at, revoked_at',
  codes:
    'id, name, rev, latest_revision_id, image, command, config, env_vars, max_concurrency, ' +
    'retries, retries_delay, default_priority, paused, deleted_at',
  code_revisions: 'id, rev, image, command, config, env_vars',
  tasks:
    'id, status, code_name, payload, priority, timeout, delay, cluster, label, percent, ' +
    'webhook, original_task_id',
  schedules:
    'id, code_name, payload, start_at, run_every, cron, timezone, end_at, run_times, priority, ' +
    'timeout, delay, task_delay, cluster, label',
  // `enabled` as its owner left it: the delivery loop disables a failing endpoint on its own (with
  // a `disabled_reason`; a request that disables one clears the reason).
  webhooks:
    'id, url, events, code_name, enabled OR disabled_reason IS NOT NULL AS owner_enabled, ' +
    'description, secret, previous_secret',
  // Not the counters and failures the shipper moves on its own.
  log_drains: 'id, url, code_name, secret',
  code_triggers: 'id, code_id, hmac_header, hmac_secret, hmac_prefix, hmac_encoding, revoked_at',
  registry_credentials: 'server_address, username, secret',
  project_webhook_secrets: 'secret',
};

export class ProjectFingerprints {
  private readonly client = new Client({ connectionString: process.env.TEST_DATABASE_URL });
  private readonly sql = Object.entries(REQUEST_WRITTEN)
    .map(([table, columns]) => {
      const key = table === 'projects' ? 'id' : 'project_id';
      return `(SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM (SELECT ${columns} FROM ${table} WHERE ${key} = p.id) t) AS ${table}`;
    })
    .join(',\n');

  async connect(): Promise<void> {
    await this.client.connect();
  }

  async end(): Promise<void> {
    await this.client.end();
  }

  /** Each project's rows, table by table (plus how many projects there are), in one query. */
  async of(...projectIds: string[]): Promise<Record<string, string>[]> {
    const { rows } = await this.client.query<Record<string, string>>(
      `SELECT p.id, (SELECT count(*) FROM projects)::text AS project_count, ${this.sql}
       FROM unnest($1::text[]) WITH ORDINALITY AS p(id, n) ORDER BY p.n`,
      [projectIds],
    );
    return rows;
  }
}
