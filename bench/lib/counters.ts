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
    `SELECT xact_commit + xact_rollback AS xacts, tup_inserted + tup_updated + tup_deleted AS written,
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
