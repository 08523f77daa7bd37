/**
 * costs: what one cold task costs each part of Kiln, for the capacity model of docs/scaling.md.
 * N trivial container tasks (payload `{}`) go through the API (100 per POST), a worker of
 * KILN_BENCH_COSTS_CONCURRENCY slots and a scheduler, on a machine otherwise quiet; the run is
 * measured from before the first POST to the last task's end:
 * - CPU seconds of the API, the worker, the scheduler, Postgres, Redis, dockerd + containerd and
 *   the exited processes (containers, runc, shims), from /proc;
 * - Postgres: transactions, rows written and read, WAL bytes (pg_stat_database, pg_stat_wal);
 * - Redis: commands (INFO commandstats) and network bytes in and out (INFO stats).
 * Each divided by N. No target: the figures feed the model, which the two-host suite checks.
 */
import { Client } from 'pg';
import Redis from 'ioredis';
import { counters, statements, statementsPerTask } from './lib/counters';
import { sleep } from '../test/support/processes';
import { setting } from './lib/env';
import { FINAL_STATUSES, newProject, queueTasks, startKiln } from './lib/kiln';
import { cpuBetween, defer, round, sampleCpu, startApp } from './lib/procs';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';

export async function costs(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    tasks: setting('KILN_BENCH_COSTS_TASKS', 500),
    concurrency: setting('KILN_BENCH_COSTS_CONCURRENCY', 4),
    warmup: setting('KILN_BENCH_COSTS_WARMUP', 20),
  };
  const kiln = await startKiln(ctx.infra, 'costs', {
    workerConcurrency: params.concurrency,
    profile: ctx.profile,
  });
  const scheduler = startApp('scheduler', kiln.env, 'costs-scheduler', ctx.profile);
  kiln.pids[scheduler.child.pid!] = 'kiln scheduler';
  defer('stop the scheduler', () => scheduler.stop());
  const project = await newProject(kiln, 'bench-costs');
  const db = new Client({ connectionString: ctx.infra.databaseUrl });
  await db.connect();
  defer('close the Postgres client', () => db.end());
  const redis = new Redis(ctx.infra.redisUrl, { lazyConnect: true });
  await redis.connect();
  defer('close the Redis client', () => void redis.disconnect());

  const runTasks = async (count: number): Promise<void> => {
    const ids: string[] = [];
    for (let left = count; left > 0; left -= 100) {
      ids.push(...(await queueTasks(project, Math.min(100, left))).ids);
    }
    for (;;) {
      ctx.deadline.check();
      const { rows } = await db.query(
        '/* bench */ SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1) AND status = ANY($2)',
        [ids, FINAL_STATUSES],
      );
      if (rows[0].n === ids.length) return;
      // Its own transactions are taken out of Postgres's count (below); its CPU is not: poll
      // seldom.
      await sleep(1000);
    }
  };

  console.log(`[costs] warm-up: ${params.warmup} tasks`);
  await runTasks(params.warmup);
  await sleep(1500);
  const cpuBefore = sampleCpu(kiln.pids);
  const before = await counters(db, redis);
  const statementsBefore = await statements(ctx.infra.databaseUrl);
  const started = performance.now();
  await runTasks(params.tasks);
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuBetween(cpuBefore, sampleCpu(kiln.pids));
  await sleep(1500);
  const after = await counters(db, redis);
  const ran = statementsPerTask(
    statementsBefore,
    await statements(ctx.infra.databaseUrl),
    params.tasks,
  );
  const n = params.tasks;
  const per = (value: number) => value / n;
  const ms = (group: string) => per((cpu[group] ?? 0) * 1000);
  const engineMs =
    ms('dockerd') + ms('containerd') + ms('exited processes (containers, runc, shims)');
  const perTask = {
    apiCpuMs: round(ms('kiln api'), 2),
    workerCpuMs: round(ms('kiln worker'), 2),
    schedulerCpuMs: round(ms('kiln scheduler'), 2),
    postgresCpuMs: round(ms('postgres'), 2),
    redisCpuMs: round(ms('redis'), 2),
    engineCpuMs: round(engineMs, 2),
    machineCpuMs: round(ms('machine busy'), 2),
    postgresTransactions: round(per(after.xacts - before.xacts - (ran?.bench ?? 0)), 2),
    postgresStatements: ran?.perTask ?? null,
    postgresRowsWritten: round(per(after.written - before.written), 2),
    postgresRowsRead: round(per(after.read - before.read), 1),
    walBytes: Math.round(per(after.walBytes - before.walBytes)),
    redisCommands: round(per(after.redisCalls - before.redisCalls), 1),
    redisBytesIn: Math.round(per(after.redisIn - before.redisIn)),
    redisBytesOut: Math.round(per(after.redisOut - before.redisOut)),
  };
  const rows: Row[] = [
    {
      metric: 'tasks / wall time',
      value: `${n} / ${fmt(seconds, 1)} s (${fmt(n / seconds, 1)}/s)`,
    },
    ...Object.entries(perTask).map(([metric, value]) => ({
      metric: `per task: ${metric}`,
      value: String(value),
    })),
  ];
  return {
    ...resultHeader('costs', ctx, startedAt),
    params,
    rows,
    details: { perTask, statementsPerTask: ran?.top, cpu, seconds: round(seconds, 2) },
  };
}
