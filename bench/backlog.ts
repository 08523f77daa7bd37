/**
 * backlog: with 1,000,000 tasks already queued in one project (rows inserted with one
 * INSERT … SELECT generate_series per 100k, as the API would write them, and the same jobs in
 * Redis with Bull's addBulk on `tasks.default.p0`), how fast is task creation through the API
 * compared with an empty queue in the same run, and how fast does `GET …/tasks?queued=1` answer?
 * Targets: creation at most 20% slower; list p50 < 50 ms. No worker runs.
 *
 * Order: empty (A), load the backlog, backlog (B), drop the backlog, empty again (A'); "empty"
 * is the mean of A and A'.
 */
import Redis from 'ioredis';
import { Pool } from 'pg';
import { setting } from './lib/env';
import { TEST_IMAGE } from '../test/support/images';
import {
  CODE_NAME,
  bullQueue,
  defaultQueue,
  deleteKeys,
  newProject,
  Project,
  queueTasks,
  startKiln,
  tasksBody,
} from './lib/kiln';
import { cpuBetween, defer, round, sampleCpu } from './lib/procs';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';
import { runBatches, summarize, Summary } from './lib/stats';

const BATCH = 100;
/** Fixed middle of the backlog's ids, so that they can be told apart and recomputed. */
const BACKLOG_TAG = 'b1cb1cb1cb';
const STEP_MS = 3;
/** A code with few of the backlog's tasks: the filter IronWorker's clients use most. */
const SMALL_CODE = 'small';
/** `GET …/tasks` with 1M tasks (issue 21): p50 under 20 ms and p99 under 50 ms, each of these. */
const LIST_P50_MS = 20;
const LIST_P99_MS = 50;

interface CreateMeasure {
  tasksPerSecond: number;
  requestMs: Summary;
  cpu: Record<string, number>;
}

export async function backlog(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    backlog: setting('KILN_BENCH_BACKLOG_TASKS', 1_000_000),
    measureTasks: setting('KILN_BENCH_BACKLOG_MEASURE', 10_000),
    clients: Math.max(1, setting('KILN_BENCH_BACKLOG_CLIENTS', 4)),
    listCalls: setting('KILN_BENCH_BACKLOG_LIST_CALLS', 200),
    listFilterCalls: setting('KILN_BENCH_BACKLOG_FILTER_CALLS', 20),
    warmup: setting('KILN_BENCH_BACKLOG_WARMUP', 1_000),
    redis: setting('KILN_BENCH_BACKLOG_REDIS', 1) === 1,
    /** Budget for loading the backlog into Redis; what is not loaded by then is skipped. */
    redisSeconds: setting('KILN_BENCH_BACKLOG_REDIS_SECONDS', 300),
  };
  if (params.backlog >= 0x1000000) throw new Error('KILN_BENCH_BACKLOG_TASKS must be < 16,777,216');
  const db = new Pool({ connectionString: ctx.infra.databaseUrl, max: 4 });
  defer('close the Postgres pool', () => db.end());
  // The backlog alone is the default queued-tasks quota (1,000,000): room for what is measured.
  const kiln = await startKiln(ctx.infra, 'backlog', {
    profile: ctx.profile,
    env: { KILN_QUOTA_QUEUED_TASKS: String(params.backlog + 10_000_000) },
  });
  const project = await newProject(kiln, 'bench-backlog');
  await project.api.ok('POST', `/2/projects/${project.id}/codes`, {
    name: SMALL_CODE,
    image: TEST_IMAGE,
  });
  const body = tasksBody(BATCH);

  const create = async (label: string): Promise<CreateMeasure> => {
    const before = sampleCpu(kiln.pids);
    const run = await runBatches(
      params.measureTasks,
      BATCH,
      params.clients,
      async (size) => {
        await queueTasks(project, size, size === BATCH ? body : tasksBody(size));
      },
      () => ctx.deadline.check(),
    );
    const rate = params.measureTasks / (run.ms / 1000);
    console.log(`[backlog] ${label}: created ${params.measureTasks} at ${fmt(rate)} tasks/s`);
    return {
      tasksPerSecond: round(rate),
      requestMs: summarize(run.batchMs),
      cpu: cpuBetween(before, sampleCpu(kiln.pids)),
    };
  };
  const list = async (label: string, query: string, calls: number): Promise<Summary> => {
    const ms: number[] = [];
    for (let i = 0; i < calls; i++) {
      ctx.deadline.check();
      const answer = await project.api.ok('GET', `/2/projects/${project.id}/tasks?${query}`);
      if (!Array.isArray(answer.body.tasks)) {
        throw new Error(`unexpected list answer ${answer.text}`);
      }
      ms.push(answer.ms);
    }
    const summary = summarize(ms);
    console.log(`[backlog] ${label}: GET ?${query} p50 ${fmt(summary.p50, 1)} ms (${calls} calls)`);
    return summary;
  };
  const LIST = 'queued=1&per_page=30';

  console.log(`[backlog] warm-up: ${params.warmup} tasks`);
  await runBatches(params.warmup, BATCH, params.clients, async (size) => {
    await queueTasks(project, size, size === BATCH ? body : tasksBody(size));
  });
  await list('warm-up', LIST, 20);

  const emptyA = {
    create: await create('empty (A)'),
    list: await list('empty (A)', LIST, params.listCalls),
  };

  const load = await loadBacklog(ctx, db, project, kiln.prefix, params);

  const withBacklog = {
    create: await create('backlog (B)'),
    list: await list('backlog (B)', LIST, params.listCalls),
    extra: {
      'queued=1&per_page=100': await list('backlog (B)', 'queued=1&per_page=100', 20),
      'queued=1&per_page=100&page=100': await list(
        'backlog (B)',
        'queued=1&per_page=100&page=100',
        20,
      ),
      'complete=1&per_page=30': await list('backlog (B)', 'complete=1&per_page=30', 5),
    },
  };

  const filters = await listFilters(project, params.listFilterCalls, list);

  console.log('[backlog] dropping the backlog');
  await db.query('TRUNCATE tasks CASCADE');
  await db.query('ANALYZE tasks');
  await deleteKeys(ctx.infra.redisUrl, `${kiln.prefix}:${defaultQueue(project.id)}`);
  const emptyA2 = {
    create: await create("empty (A')"),
    list: await list("empty (A')", LIST, params.listCalls),
  };

  const emptyRate = (emptyA.create.tasksPerSecond + emptyA2.create.tasksPerSecond) / 2;
  const relative = withBacklog.create.tasksPerSecond / emptyRate;
  const listP50 = withBacklog.list.p50;
  const backlogLabel = params.backlog === 1_000_000 ? '1M' : fmt(params.backlog);
  const rows: Row[] = [
    {
      metric: 'backlog loaded',
      value: `${fmt(load.rows)} rows in Postgres (90 % queued, 10 % complete), ${fmt(load.redisJobs)} jobs in Redis`,
    },
    {
      metric: "creation, empty queue (A, A')",
      value: `${fmt(emptyA.create.tasksPerSecond)}, ${fmt(emptyA2.create.tasksPerSecond)} tasks/s`,
    },
    {
      metric: `creation, ${backlogLabel} backlog (B)`,
      value: `${fmt(withBacklog.create.tasksPerSecond)} tasks/s`,
    },
    {
      metric: 'backlog / empty creation rate',
      value: `${fmt(relative, 2)}× (${fmt(Math.abs(1 - relative) * 100, 1)}% ${relative <= 1 ? 'slower' : 'faster'})`,
      target: '≥ 0.80×',
      met: relative >= 0.8,
    },
    {
      metric: 'GET ?queued=1 p50 / p99, empty (A)',
      value: `${fmt(emptyA.list.p50, 1)} / ${fmt(emptyA.list.p99, 1)} ms`,
    },
    {
      metric: `GET ?queued=1 p50 / p99, ${backlogLabel} backlog`,
      value: `${fmt(listP50, 1)} / ${fmt(withBacklog.list.p99, 1)} ms`,
      target: 'p50 < 50 ms',
      met: listP50 < 50,
    },
    {
      metric: `GET ?complete=1 p50, ${backlogLabel} backlog (no target)`,
      value: `${fmt(withBacklog.extra['complete=1&per_page=30'].p50, 1)} ms`,
    },
    ...filters.map(({ query, summary }): Row => ({
      metric: `GET ?${query} p50 / p99, ${backlogLabel} backlog`,
      value: `${fmt(summary.p50, 1)} / ${fmt(summary.p99, 1)} ms`,
      target: `< ${LIST_P50_MS} / ${LIST_P99_MS} ms`,
      met: summary.p50 < LIST_P50_MS && summary.p99 < LIST_P99_MS,
    })),
  ];
  return {
    ...resultHeader('backlog', ctx, startedAt),
    params: {
      ...params,
      order: "warm-up, empty (A), load backlog, backlog (B), drop backlog, empty again (A')",
    },
    rows,
    details: {
      relativeCreationRate: round(relative, 3),
      filters,
      emptyA,
      withBacklog,
      emptyA2,
      load,
    },
  };
}

/**
 * Inserts `backlog` tasks as the API writes them (with `enqueued_at` set), ids `<8 hex
 * seconds><BACKLOG_TAG><6 hex counter>`, created over the last ~hour: of the project's `bench`
 * code but every 500th of its `small` code (2,000 of 1M), every 10th `complete` and the rest
 * `queued`, every 100th labelled `nightly`, every 50th on cluster `gpu`; then VACUUM ANALYZE; then
 * the same jobs into Redis with addBulk.
 */
async function loadBacklog(
  ctx: BenchContext,
  db: Pool,
  project: Project,
  prefix: string,
  params: { backlog: number; redis: boolean; redisSeconds: number; clients: number },
) {
  const n = params.backlog;
  const baseMs = Date.now() - n * STEP_MS - 600_000;
  const idOf = (g: number): string =>
    Math.floor((baseMs + g * STEP_MS) / 1000)
      .toString(16)
      .padStart(8, '0') +
    BACKLOG_TAG +
    g.toString(16).padStart(6, '0');
  const codes = (
    await db.query<{ id: string; latest_revision_id: string; rev: number; name: string }>(
      `SELECT id, latest_revision_id, rev, name FROM codes WHERE project_id = $1`,
      [project.id],
    )
  ).rows;
  const code = codes.find((c) => c.name === CODE_NAME)!;
  const small = codes.find((c) => c.name === SMALL_CODE)!;

  console.log(`[backlog] inserting ${fmt(n)} queued tasks into Postgres`);
  const sqlStarted = performance.now();
  const CHUNK = 100_000;
  let rows = 0;
  for (let from = 1; from <= n; from += CHUNK) {
    ctx.deadline.check();
    const to = Math.min(n, from + CHUNK - 1);
    const inserted = await db.query(
      `INSERT INTO tasks (id, project_id, code_id, code_revision_id, code_name, code_rev, status,
                          priority, payload, timeout, delay, cluster, label, attempt,
                          run_at, enqueued_at, created_at, updated_at)
       SELECT lpad(to_hex(floor(extract(epoch FROM t.ts))::bigint), 8, '0') || $6 || lpad(to_hex(g), 6, '0'),
              $1,
              CASE WHEN g % 500 = 0 THEN $11 ELSE $2 END,
              CASE WHEN g % 500 = 0 THEN $12 ELSE $3 END,
              CASE WHEN g % 500 = 0 THEN $13 ELSE $4 END, $5,
              CASE WHEN g % 10 = 0 THEN 'complete' ELSE 'queued' END, 0, '{}', 3600, 0,
              CASE WHEN g % 50 = 0 THEN 'gpu' ELSE 'default' END,
              CASE WHEN g % 100 = 0 THEN 'nightly' ELSE '' END, 0,
              t.ts, t.ts, t.ts, t.ts
         FROM generate_series($7::int, $8::int) AS g,
              LATERAL (SELECT to_timestamp(($9::bigint + g * $10::bigint) / 1000.0) AS ts) AS t`,
      [
        project.id,
        code.id,
        code.latest_revision_id,
        code.name,
        code.rev,
        BACKLOG_TAG,
        from,
        to,
        baseMs,
        STEP_MS,
        small.id,
        small.latest_revision_id,
        small.name,
      ],
    );
    rows += inserted.rowCount ?? 0;
    process.stdout.write(`\r[backlog]   ${fmt(rows)} rows`);
  }
  process.stdout.write('\n');
  const insertSeconds = (performance.now() - sqlStarted) / 1000;
  const vacuumStarted = performance.now();
  await db.query('VACUUM ANALYZE tasks');
  const vacuumSeconds = (performance.now() - vacuumStarted) / 1000;
  // Sanity: the SQL ids are the ones recomputed for Redis.
  const probe = await db.query(`SELECT 1 FROM tasks WHERE id = $1`, [idOf(Math.ceil(n / 2))]);
  if (n > 0 && probe.rowCount !== 1) throw new Error('backlog ids in SQL and JS differ');
  const size = (
    await db.query<{ size: string }>(
      `SELECT pg_size_pretty(pg_total_relation_size('tasks')) AS size`,
    )
  ).rows[0].size;
  console.log(
    `[backlog]   ${fmt(insertSeconds, 1)} s insert + ${fmt(vacuumSeconds, 1)} s VACUUM ANALYZE; tasks table ${size}`,
  );

  let redisJobs = 0;
  let redisSeconds = 0;
  let redisMemory: string | undefined;
  if (params.redis) {
    console.log(
      `[backlog] adding ${fmt(n)} jobs to Redis (${prefix}:${defaultQueue(project.id)}, addBulk of 1000)`,
    );
    const queue = bullQueue(ctx.infra.redisUrl, prefix, defaultQueue(project.id));
    defer('close the backlog Bull queue', () => queue.close());
    await queue.isReady();
    const started = performance.now();
    const budgetEnd = Date.now() + params.redisSeconds * 1000;
    let next = 1;
    await Promise.all(
      Array.from({ length: params.clients }, async () => {
        while (next <= n && Date.now() < budgetEnd) {
          ctx.deadline.check();
          const from = next;
          const to = Math.min(n, from + 999);
          next = to + 1;
          const jobs = [];
          for (let g = from; g <= to; g++) {
            const taskId = idOf(g);
            jobs.push({
              data: { taskId, projectId: project.id },
              opts: { jobId: taskId, removeOnComplete: true, removeOnFail: true },
            });
          }
          await queue.addBulk(jobs);
          redisJobs += jobs.length;
          if (redisJobs % 100_000 === 0) {
            process.stdout.write(`\r[backlog]   ${fmt(redisJobs)} jobs`);
          }
        }
      }),
    );
    process.stdout.write('\n');
    redisSeconds = (performance.now() - started) / 1000;
    await queue.close();
    const redis = new Redis(ctx.infra.redisUrl);
    try {
      redisMemory = /used_memory_human:(\S+)/.exec(await redis.info('memory'))?.[1];
    } finally {
      redis.disconnect();
    }
    console.log(`[backlog]   ${fmt(redisSeconds, 1)} s; Redis uses ${redisMemory}`);
    if (redisJobs < n) {
      console.log(`[backlog]   Redis budget reached: ${fmt(redisJobs)} of ${fmt(n)} jobs`);
    }
  } else {
    console.log('[backlog] KILN_BENCH_BACKLOG_REDIS=0: the backlog is in Postgres only');
  }
  return {
    rows,
    redisJobs,
    insertSeconds: round(insertSeconds, 1),
    vacuumAnalyzeSeconds: round(vacuumSeconds, 1),
    tasksTableSize: size,
    redisSeconds: round(redisSeconds, 1),
    redisUsedMemory: redisMemory,
  };
}

/**
 * Every list filter (code name, label, cluster, time window, and a combination), alone and with
 * a status flag or two, on page 0 and page 100 (`per_page` 30: the 3,001st to 3,030th task).
 */
async function listFilters(
  project: Project,
  calls: number,
  list: (label: string, query: string, calls: number) => Promise<Summary>,
): Promise<{ query: string; summary: Summary }[]> {
  const hourAgo = Math.floor(Date.now() / 1000) - 3600;
  const filters = [
    `code_name=${CODE_NAME}`,
    `code_name=${SMALL_CODE}`,
    'label=nightly',
    'cluster=gpu',
    'cluster=default',
    `from_time=${hourAgo}&to_time=${hourAgo + 900}`,
    `code_name=${SMALL_CODE}&label=nightly`,
  ];
  const flags = ['', 'queued=1&', 'complete=1&', 'queued=1&running=1&'];
  const measured: { query: string; summary: Summary }[] = [];
  for (const filter of filters) {
    for (const flag of flags) {
      for (const page of [0, 100]) {
        const query = `${flag}${filter}&per_page=30${page ? `&page=${page}` : ''}`;
        measured.push({ query, summary: await list('filters', query, calls) });
      }
    }
  }
  return measured;
}
