/**
 * capacity: what this machine's Postgres and Redis sustain, so that docs/scaling.md turns the
 * per-task costs (`costs`, `hot`) into tasks a second from figures measured here rather than
 * typical ones.
 * - Postgres: pgbench's simple-update transaction (`-N`: an UPDATE, a SELECT and an INSERT; a small
 *   write transaction like Kiln's) from 8 clients for 15 s on a scale-10 pgbench database of its
 *   own (`kiln_bench_pgbench`): transactions a second, and Postgres's CPU seconds meanwhile.
 * - Redis: redis-benchmark from 16 clients in a database of its own (13): a Lua script (`EVAL`,
 *   the form of Bull's commands) and LPUSH + RPOP: commands a second, and redis-server's CPU.
 * No Kiln runs. No target: the figures feed the model.
 */
import { spawnSync } from 'node:child_process';
import Redis from 'ioredis';
import { ensureDatabase, setting } from './lib/env';
import { cpuBetween, defer, round, sampleCpu } from './lib/procs';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';

const PG_BIN = '/usr/lib/postgresql/15/bin';
const REDIS_DB = 13;

export async function capacity(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    pgClients: setting('KILN_BENCH_CAPACITY_PG_CLIENTS', 8),
    pgSeconds: setting('KILN_BENCH_CAPACITY_PG_SECONDS', 15),
    pgScale: setting('KILN_BENCH_CAPACITY_PG_SCALE', 10),
    redisClients: setting('KILN_BENCH_CAPACITY_REDIS_CLIENTS', 16),
    redisRequests: setting('KILN_BENCH_CAPACITY_REDIS_REQUESTS', 300_000),
  };

  // ---- Postgres
  const url = new URL(ctx.infra.databaseUrl);
  url.pathname = '/kiln_bench_pgbench';
  await ensureDatabase(url.toString());
  const pgEnv = {
    ...process.env,
    PGHOST: url.hostname,
    PGPORT: url.port,
    PGUSER: decodeURIComponent(url.username),
    PGPASSWORD: decodeURIComponent(url.password),
    PGDATABASE: 'kiln_bench_pgbench',
  };
  const pgbench = (args: string[]) => {
    const run = spawnSync(`${PG_BIN}/pgbench`, args, { env: pgEnv, encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`pgbench ${args.join(' ')}: ${run.stderr}`);
    return run.stdout;
  };
  console.log(`[capacity] pgbench: init (scale ${params.pgScale})`);
  pgbench(['-i', '-q', '-s', String(params.pgScale)]);
  defer('drop the pgbench tables', () => {
    pgbench(['-i', '-I', 'd']);
  });
  console.log(`[capacity] pgbench -N: ${params.pgClients} clients, ${params.pgSeconds} s`);
  const before = sampleCpu({});
  const pgOut = pgbench([
    '-N',
    '-c',
    String(params.pgClients),
    '-j',
    '2',
    '-T',
    String(params.pgSeconds),
  ]);
  const pgCpu = cpuBetween(before, sampleCpu({}));
  const tps = Number(/tps = ([\d.]+)/.exec(pgOut)?.[1]);
  if (!Number.isFinite(tps)) throw new Error(`no tps in pgbench's output:\n${pgOut}`);
  const pgCores = (pgCpu.postgres ?? 0) / params.pgSeconds;

  // ---- Redis
  const redisUrl = new URL(ctx.infra.redisUrl);
  const redisArgs = [
    '-h',
    redisUrl.hostname,
    '-p',
    redisUrl.port,
    ...(redisUrl.username ? ['--user', decodeURIComponent(redisUrl.username)] : []),
    // On the command line: this loopback Redis's password, visible to this machine's `ps` for the
    // run (redis-benchmark has no other way to take it).
    ...(redisUrl.password ? ['-a', decodeURIComponent(redisUrl.password)] : []),
    '--dbnum',
    String(REDIS_DB),
    '-c',
    String(params.redisClients),
    '-n',
    String(params.redisRequests),
    '-q',
    '--csv',
  ];
  const redis = new Redis(ctx.infra.redisUrl, { db: REDIS_DB, lazyConnect: true });
  await redis.connect();
  defer('remove the redis-benchmark keys', async () => {
    await redis.del('kiln-capacity:counter', 'mylist');
    redis.disconnect();
  });
  const redisBench = (extra: string[]) => {
    const started = performance.now();
    const cpuBefore = sampleCpu({});
    const run = spawnSync('redis-benchmark', [...redisArgs, ...extra], { encoding: 'utf8' });
    if (run.status !== 0) {
      throw new Error(
        `redis-benchmark ${extra.join(' ')}: ${run.stderr}${run.stdout.slice(0, 500)}`,
      );
    }
    const cpu = cpuBetween(cpuBefore, sampleCpu({}));
    const seconds = (performance.now() - started) / 1000;
    const rates: Record<string, number> = {};
    for (const match of run.stdout.matchAll(/^"([^"]+)","([\d.]+)"/gm)) {
      rates[match[1]] = Number(match[2]);
    }
    return { rates, redisCores: (cpu.redis ?? 0) / seconds, seconds };
  };
  console.log(`[capacity] redis-benchmark: EVAL, then LPUSH and RPOP`);
  const evalRun = redisBench([
    'EVAL',
    "redis.call('incr', KEYS[1]) return 1",
    '1',
    'kiln-capacity:counter',
  ]);
  const listRun = redisBench(['-t', 'lpush,rpop']);
  const evalRate = Object.values(evalRun.rates)[0] ?? NaN;

  const rows: Row[] = [
    {
      metric: `Postgres: pgbench -N, ${params.pgClients} clients`,
      value: `${fmt(tps)} transactions/s, Postgres using ${fmt(pgCores, 2)} cores`,
    },
    {
      metric: 'Postgres: small write transactions per core-second',
      value: fmt(tps / pgCores),
    },
    {
      metric: `Redis: EVAL (a one-command Lua script), ${params.redisClients} clients`,
      value: `${fmt(evalRate)}/s, redis-server using ${fmt(evalRun.redisCores, 2)} cores`,
    },
    {
      metric: 'Redis: LPUSH / RPOP',
      value: `${fmt(listRun.rates.LPUSH ?? NaN)} / ${fmt(listRun.rates.RPOP ?? NaN)}/s, redis-server using ${fmt(listRun.redisCores, 2)} cores`,
    },
  ];
  return {
    ...resultHeader('capacity', ctx, startedAt),
    params,
    rows,
    details: {
      postgres: {
        tps: round(tps),
        cores: round(pgCores, 2),
        tpsPerCore: round(tps / pgCores),
        cpu: pgCpu,
      },
      redis: {
        eval: { perSecond: evalRate, cores: round(evalRun.redisCores, 2) },
        lists: { perSecond: listRun.rates, cores: round(listRun.redisCores, 2) },
      },
      pgbenchOutput: pgOut,
    },
  };
}
