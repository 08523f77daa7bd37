import Redis from 'ioredis';
import { Client, Pool } from 'pg';

/** Running totals of Postgres and Redis, whose differences over a run are divided by its tasks. */
export interface Counters {
  xacts: number;
  written: number;
  read: number;
  walBytes: number;
  redisCalls: number;
  redisIn: number;
  redisOut: number;
}

/**
 * Postgres's transactions, rows written and read and WAL bytes of the current database
 * (pg_stat_database, pg_stat_wal), and Redis's commands and network bytes (INFO commandstats,
 * INFO stats: the whole server's, so other work on it counts too).
 */
export async function counters(db: Client | Pool, redis: Redis): Promise<Counters> {
  // The statistics a backend gathers reach the shared counters within a second of its last
  // transaction (PostgreSQL 15): read them once they have.
  const { rows } = await db.query(
    `/* bench */ SELECT xact_commit + xact_rollback AS xacts, tup_inserted + tup_updated + tup_deleted AS written,
            tup_fetched AS read, (SELECT wal_bytes FROM pg_stat_wal) AS wal
       FROM pg_stat_database WHERE datname = current_database()`,
  );
  const info = `${await redis.info('commandstats')}\n${await redis.info('stats')}`;
  let calls = 0;
  for (const match of info.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)) calls += Number(match[1]);
  const stat = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  return {
    xacts: Number(rows[0].xacts),
    written: Number(rows[0].written),
    read: Number(rows[0].read),
    walBytes: Number(rows[0].wal),
    redisCalls: calls,
    redisIn: stat('total_net_input_bytes'),
    redisOut: stat('total_net_output_bytes'),
  };
}

/** One statement's running totals in pg_stat_statements. */
interface StatementTotals {
  query: string;
  calls: number;
  ms: number;
}

/**
 * The statements Postgres ran in the database of `databaseUrl`, by query (pg_stat_statements,
 * which scripts/infra.sh preloads and installs in the `postgres` database; read from there). Null
 * when it is not there (a Postgres started otherwise).
 */
export async function statements(
  databaseUrl: string,
): Promise<Map<string, StatementTotals> | null> {
  const target = new URL(databaseUrl);
  const database = decodeURIComponent(target.pathname.slice(1));
  const url = new URL(databaseUrl);
  url.pathname = '/postgres';
  const client = new Client({ connectionString: url.toString() });
  try {
    await client.connect();
    // A role sees its own statements' rows (one per user, database and query).
    const { rows } = await client.query<{ id: string; query: string; calls: string; ms: number }>(
      `SELECT s.queryid::text AS id, min(s.query) AS query, sum(s.calls) AS calls,
              sum(s.total_exec_time) AS ms
         FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname = $1
        GROUP BY s.queryid`,
      [database],
    );
    return new Map(
      rows.map((r) => [r.id, { query: r.query, calls: Number(r.calls), ms: Number(r.ms) }]),
    );
  } catch {
    return null;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * What one task cost in statements between two readings: all, and the most frequent ones; and
 * how many statements the benchmark itself ran meanwhile (`bench`, not per task: its polls, each a
 * transaction of its own, to take out of the transaction count).
 */
export function statementsPerTask(
  before: Map<string, StatementTotals> | null,
  after: Map<string, StatementTotals> | null,
  tasks: number,
  top = 12,
): { perTask: number; bench: number; top: { calls: number; ms: number; query: string }[] } | null {
  if (!before || !after) return null;
  const diffs: { calls: number; ms: number; query: string }[] = [];
  let bench = 0;
  for (const [id, now] of after) {
    const then = before.get(id);
    const calls = now.calls - (then?.calls ?? 0);
    if (calls <= 0) continue;
    // The benchmark's own statements (polls, these readings) say so in a comment.
    if (now.query.startsWith('/* bench */')) {
      bench += calls;
      continue;
    }
    diffs.push({
      calls: Math.round((calls / tasks) * 1000) / 1000,
      ms: Math.round(((now.ms - (then?.ms ?? 0)) / tasks) * 1000) / 1000,
      query: now.query.replace(/\s+/g, ' ').slice(0, 160),
    });
  }
  diffs.sort((a, b) => b.calls - a.calls);
  const perTask = diffs.reduce((sum, d) => sum + d.calls, 0);
  return { perTask: Math.round(perTask * 100) / 100, bench, top: diffs.slice(0, top) };
}
