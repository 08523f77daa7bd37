/**
 * pgbouncer: Kiln with Postgres straight (`DATABASE_URL` to Postgres) against Kiln behind a
 * PgBouncer in transaction pooling (`DATABASE_POOL_MODE=transaction`, `DATABASE_DIRECT_URL` to
 * Postgres), both running at once on the same database, Redis and Docker engine, measured in
 * turns (ABBA): ingest (POST …/tasks, 100 tasks a request, a few concurrent clients) and
 * dispatch (N trivial container tasks, one worker with KILN_WORKER_CONCURRENCY=C, from the first
 * request to the last task's end). Target (issue 18): through PgBouncer within 15 % of direct,
 * for both. The pgbouncer is the benchmark's own (Debian's, docs/ha.md), on a loopback port.
 */
import { Pool } from 'pg';
import { OwnPgBouncer } from '../test/support/pgbouncer';
import { sleep } from '../test/support/processes';
import { setting } from './lib/env';
import { Api } from './lib/http';
import {
  CODE_NAME,
  FINAL_STATUSES,
  Kiln,
  Project,
  newProject,
  queueTasks,
  startKiln,
} from './lib/kiln';
import { defer, round } from './lib/procs';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';
import { runBatches, summarize } from './lib/stats';

const BATCH = 100;
const INGEST_CLUSTER = 'bench-ingest';

type Way = 'direct' | 'pgbouncer';

export async function pgbouncer(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    ingestTasks: setting('KILN_BENCH_PGBOUNCER_INGEST_TASKS', 10_000),
    clients: setting('KILN_BENCH_PGBOUNCER_CLIENTS', 4),
    dispatchTasks: setting('KILN_BENCH_PGBOUNCER_DISPATCH_TASKS', 200),
    concurrency: Math.max(1, setting('KILN_BENCH_PGBOUNCER_CONCURRENCY', 4)),
    rounds: Math.max(1, setting('KILN_BENCH_PGBOUNCER_ROUNDS', 2)),
    poolSize: setting('KILN_BENCH_PGBOUNCER_POOL_SIZE', 20),
    warmup: setting('KILN_BENCH_PGBOUNCER_WARMUP', 500),
    batch: BATCH,
  };
  const bouncer = new OwnPgBouncer({ poolSize: params.poolSize, server: ctx.infra.databaseUrl });
  await bouncer.start();
  defer('stop the pgbouncer', () => bouncer.stop());
  const db = new Pool({ connectionString: ctx.infra.databaseUrl, max: 2 });
  defer('close the Postgres pool', () => db.end());

  const kilns: Record<Way, Kiln> = {
    direct: await startKiln(ctx.infra, 'pgbouncer-direct', {
      workerConcurrency: params.concurrency,
    }),
    pgbouncer: await startKiln(ctx.infra, 'pgbouncer-pooled', {
      workerConcurrency: params.concurrency,
      env: {
        DATABASE_URL: bouncer.url(ctx.infra.databaseUrl),
        DATABASE_POOL_MODE: 'transaction',
        DATABASE_DIRECT_URL: ctx.infra.databaseUrl,
      },
    }),
  };
  // Two projects on each: one for dispatch, one for ingest whose tasks go to a cluster no worker
  // takes (they pile up, as in the ingest benchmark, which runs no worker).
  const projects = {} as Record<Way, { ingest: Project; dispatch: Project }>;
  for (const way of ['direct', 'pgbouncer'] as const) {
    const ingest = await newProject(kilns[way], `bench-pgb-ingest-${way}`);
    await new Api(kilns[way].url, kilns[way].adminToken).ok(
      'PUT',
      `/2/projects/${ingest.id}/clusters/${INGEST_CLUSTER}`,
    );
    projects[way] = { ingest, dispatch: await newProject(kilns[way], `bench-pgb-dispatch-${way}`) };
  }
  const ingestBody = (count: number) =>
    JSON.stringify({
      tasks: Array.from({ length: count }, () => ({
        code_name: CODE_NAME,
        payload: '{}',
        cluster: INGEST_CLUSTER,
      })),
    });

  const body = ingestBody(BATCH);
  const ingestRun = (way: Way, count: number) =>
    runBatches(
      count,
      BATCH,
      params.clients,
      async (size) => {
        await queueTasks(projects[way].ingest, size, size === BATCH ? body : ingestBody(size));
      },
      () => ctx.deadline.check(),
    );
  const dispatchRun = async (way: Way, count: number): Promise<number> => {
    const started = performance.now();
    const ids: string[] = [];
    for (let queued = 0; queued < count; queued += BATCH) {
      ids.push(...(await queueTasks(projects[way].dispatch, Math.min(BATCH, count - queued))).ids);
    }
    for (;;) {
      ctx.deadline.check();
      const { rows } = await db.query<{ done: string; complete: string }>(
        `SELECT count(*) AS done, count(*) FILTER (WHERE status = 'complete') AS complete
           FROM tasks WHERE id = ANY($1) AND status = ANY($2)`,
        [ids, FINAL_STATUSES],
      );
      if (Number(rows[0].done) === count) {
        if (Number(rows[0].complete) !== count) {
          throw new Error(`${way}: ${count - Number(rows[0].complete)} tasks did not complete`);
        }
        return performance.now() - started;
      }
      await sleep(50);
    }
  };

  console.log(`[pgbouncer] warm-up: ${params.warmup} tasks ingested, 8 dispatched, each way`);
  for (const way of ['direct', 'pgbouncer'] as const) {
    await ingestRun(way, params.warmup);
    await dispatchRun(way, 8);
  }

  const ingest = { direct: { tasks: 0, ms: 0 }, pgbouncer: { tasks: 0, ms: 0 } };
  const requestMs: Record<Way, number[]> = { direct: [], pgbouncer: [] };
  const dispatchMs: Record<Way, number> = { direct: 0, pgbouncer: 0 };
  const phases: { way: Way; what: string; seconds: number }[] = [];
  const perRound = Math.ceil(params.ingestTasks / params.rounds);
  for (let r = 0; r < params.rounds; r++) {
    const order: Way[] = r % 2 === 0 ? ['direct', 'pgbouncer'] : ['pgbouncer', 'direct'];
    for (const way of order) {
      const run = await ingestRun(way, perRound);
      ingest[way].tasks += perRound;
      ingest[way].ms += run.ms;
      requestMs[way].push(...run.batchMs);
      phases.push({ way, what: `ingest ${perRound}`, seconds: round(run.ms / 1000, 2) });
      console.log(`[pgbouncer] ingest ${way}: ${perRound} in ${fmt(run.ms / 1000, 2)} s`);
    }
    for (const way of order) {
      const ms = await dispatchRun(way, params.dispatchTasks);
      dispatchMs[way] += ms;
      phases.push({ way, what: `dispatch ${params.dispatchTasks}`, seconds: round(ms / 1000, 2) });
      console.log(`[pgbouncer] dispatch ${way}: ${params.dispatchTasks} in ${fmt(ms / 1000, 2)} s`);
    }
  }
  const rate = (way: Way) => ingest[way].tasks / (ingest[way].ms / 1000);
  const ingestRatio = rate('pgbouncer') / rate('direct');
  const dispatchRatio = dispatchMs.pgbouncer / dispatchMs.direct;
  const stats = (await bouncer.admin('SHOW STATS')).find(
    (row) => row.database === new URL(ctx.infra.databaseUrl).pathname.slice(1),
  );

  const rows: Row[] = [
    { metric: 'ingest, direct', value: `${fmt(rate('direct'))} tasks/s` },
    { metric: 'ingest, through PgBouncer', value: `${fmt(rate('pgbouncer'))} tasks/s` },
    {
      metric: 'ingest: PgBouncer / direct',
      value: `${fmt(ingestRatio, 2)}×`,
      target: '≥ 0.85×',
      met: ingestRatio >= 0.85,
    },
    {
      metric: `dispatch, ${params.dispatchTasks} tasks, concurrency ${params.concurrency}: direct / PgBouncer`,
      value: `${fmt(dispatchMs.direct / params.rounds / 1000, 2)} / ${fmt(dispatchMs.pgbouncer / params.rounds / 1000, 2)} s`,
    },
    {
      metric: 'dispatch: PgBouncer / direct wall time',
      value: `${fmt(dispatchRatio, 2)}×`,
      target: '≤ 1.15×',
      met: dispatchRatio <= 1.15,
    },
    {
      metric: 'request latency p50 / p99: direct, PgBouncer',
      value: `${fmt(summarize(requestMs.direct).p50)} / ${fmt(summarize(requestMs.direct).p99)}, ${fmt(summarize(requestMs.pgbouncer).p50)} / ${fmt(summarize(requestMs.pgbouncer).p99)} ms`,
    },
    {
      metric: 'diag: transactions through PgBouncer',
      value: stats ? fmt(Number(stats.total_xact_count)) : 'none',
    },
  ];
  return {
    ...resultHeader('pgbouncer', ctx, startedAt),
    params: {
      ...params,
      order:
        'warm-up each way; then rounds: ingest direct, pgbouncer, dispatch direct, pgbouncer; the next round the other way round',
      pgbouncer: `transaction pooling, default_pool_size ${params.poolSize}`,
    },
    rows,
    details: {
      ingestRatio: round(ingestRatio, 3),
      dispatchRatio: round(dispatchRatio, 3),
      ingestTasksPerSecond: { direct: round(rate('direct')), pgbouncer: round(rate('pgbouncer')) },
      requestMs: { direct: summarize(requestMs.direct), pgbouncer: summarize(requestMs.pgbouncer) },
      phases,
      pgbouncerStats: stats,
    },
  };
}
