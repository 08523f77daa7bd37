/**
 * ingest: tasks created per second through Kiln's API (POST …/tasks, 100 tasks a request, a few
 * concurrent clients) against raw Bull `addBulk` of the same number of jobs (100 a call, same
 * Redis, same connection settings, a queue of its own), in the same run. No worker runs, so the
 * tasks pile up. Target: Kiln ≥ 0.5× raw Bull.
 */
import { Pool } from 'pg';
import { setting } from './lib/env';
import {
  bullQueue,
  defaultQueue,
  newProject,
  queueTasks,
  startKiln,
  tasksBody,
  waitingCount,
} from './lib/kiln';
import { cpuBetween, defer, round, sampleCpu } from './lib/procs';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';
import { runBatches, summarize } from './lib/stats';
import { monotonicUs, summarizeProfile, Window } from './lib/profile';

const BATCH = 100;

export async function ingest(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    tasks: setting('KILN_BENCH_INGEST_TASKS', 20_000),
    clients: setting('KILN_BENCH_INGEST_CLIENTS', 4),
    rounds: Math.max(1, setting('KILN_BENCH_INGEST_ROUNDS', 2)),
    warmup: setting('KILN_BENCH_INGEST_WARMUP', 1_000),
    diagnostics: setting('KILN_BENCH_INGEST_DIAG', 5_000),
    batch: BATCH,
  };
  const kiln = await startKiln(ctx.infra, 'ingest', { profile: ctx.profile });
  const project = await newProject(kiln, 'bench-ingest');
  const rawName = 'bench.raw-bull';
  const raw = bullQueue(ctx.infra.redisUrl, kiln.prefix, rawName);
  defer('close the raw Bull queue', () => raw.close());
  await raw.isReady();

  // Job ids shaped like Kiln's (24 hex: seconds, 5 fixed bytes, counter).
  let counter = 0;
  const fakeId = (): string =>
    Math.floor(Date.now() / 1000)
      .toString(16)
      .padStart(8, '0') +
    'ba5eba5eba' +
    (counter++ % 0x1000000).toString(16).padStart(6, '0');
  const jobsOf = (size: number) =>
    Array.from({ length: size }, () => {
      const id = fakeId();
      return {
        data: { taskId: id, projectId: project.id },
        opts: { jobId: id, removeOnComplete: true, removeOnFail: true },
      };
    });
  const body = tasksBody(BATCH);
  const kilnBatch = async (size: number): Promise<void> => {
    await queueTasks(project, size, size === BATCH ? body : tasksBody(size));
  };
  const rawBatch = async (size: number): Promise<void> => {
    await raw.addBulk(jobsOf(size));
  };
  const systems = { kiln: kilnBatch, bull: rawBatch } as const;

  console.log(`[ingest] warm-up: ${params.warmup} tasks each`);
  await runBatches(params.warmup, BATCH, params.clients, kilnBatch, () => ctx.deadline.check());
  await runBatches(params.warmup, BATCH, params.clients, rawBatch, () => ctx.deadline.check());

  // Rounds in ABBA order (bull, kiln, kiln, bull, …) so that drift favours neither.
  const perRound = Math.ceil(params.tasks / params.rounds);
  const totals = { kiln: { tasks: 0, ms: 0 }, bull: { tasks: 0, ms: 0 } };
  const batchMs: Record<'kiln' | 'bull', number[]> = { kiln: [], bull: [] };
  const cpu: Record<'kiln' | 'bull', Record<string, number>[]> = { kiln: [], bull: [] };
  const phases: { system: string; tasks: number; seconds: number; perSecond: number }[] = [];
  const kilnWindows: Window[] = [];
  for (let round_ = 0; round_ < params.rounds; round_++) {
    const order = round_ % 2 === 0 ? (['bull', 'kiln'] as const) : (['kiln', 'bull'] as const);
    for (const system of order) {
      const count = Math.min(perRound, params.tasks - totals[system].tasks);
      const before = sampleCpu(kiln.pids);
      const startUs = monotonicUs();
      const run = await runBatches(count, BATCH, params.clients, systems[system], () =>
        ctx.deadline.check(),
      );
      if (system === 'kiln') kilnWindows.push({ startUs, endUs: monotonicUs() });
      cpu[system].push(cpuBetween(before, sampleCpu(kiln.pids)));
      totals[system].tasks += count;
      totals[system].ms += run.ms;
      batchMs[system].push(...run.batchMs);
      const perSecond = count / (run.ms / 1000);
      phases.push({
        system,
        tasks: count,
        seconds: round(run.ms / 1000, 2),
        perSecond: round(perSecond),
      });
      console.log(
        `[ingest] ${system}: ${count} in ${fmt(run.ms / 1000, 2)} s = ${fmt(perSecond)}/s`,
      );
    }
  }
  const kilnRate = totals.kiln.tasks / (totals.kiln.ms / 1000);
  const bullRate = totals.bull.tasks / (totals.bull.ms / 1000);
  const ratio = kilnRate / bullRate;

  // Everything created was stored and enqueued?
  const db = new Pool({ connectionString: ctx.infra.databaseUrl, max: params.clients });
  defer('close the Postgres pool', () => db.end());
  const stored = (
    await db.query<{ total: string; enqueued: string }>(
      `SELECT count(*) AS total, count(enqueued_at) AS enqueued FROM tasks WHERE project_id = $1`,
      [project.id],
    )
  ).rows[0];
  const expected = params.warmup + params.tasks;
  const verification = {
    expected,
    rowsInPostgres: Number(stored.total),
    rowsWithEnqueuedAt: Number(stored.enqueued),
    kilnJobsWaitingInRedis: await waitingCount(
      ctx.infra.redisUrl,
      kiln.prefix,
      defaultQueue(project.id),
    ),
    rawJobsWaitingInRedis: await waitingCount(ctx.infra.redisUrl, kiln.prefix, rawName),
  };

  const diagnostics =
    params.diagnostics > 0 ? await diagnose(ctx, kiln.prefix, project.id, db, params) : undefined;

  let profile;
  if (ctx.profile) {
    await kiln.api.stop();
    profile = summarizeProfile('ingest-api', kilnWindows);
  }

  const kilnCpu = sumCpu(cpu.kiln);
  const bullCpu = sumCpu(cpu.bull);
  const rows: Row[] = [
    { metric: 'raw Bull addBulk', value: `${fmt(bullRate)} jobs/s` },
    { metric: 'Kiln POST …/tasks', value: `${fmt(kilnRate)} tasks/s` },
    { metric: 'Kiln / raw Bull', value: `${fmt(ratio, 2)}×`, target: '≥ 0.50×', met: ratio >= 0.5 },
    {
      metric: 'Kiln request latency p50 / p99',
      value: `${fmt(summarize(batchMs.kiln).p50)} / ${fmt(summarize(batchMs.kiln).p99)} ms`,
    },
    {
      metric: 'all tasks stored and enqueued',
      value:
        verification.rowsInPostgres === expected &&
        verification.rowsWithEnqueuedAt === expected &&
        verification.kilnJobsWaitingInRedis === expected
          ? 'yes'
          : `NO ${JSON.stringify(verification)}`,
    },
  ];
  if (diagnostics) {
    for (const [metric, perSecond] of Object.entries(diagnostics.rates)) {
      rows.push({ metric: `diag: ${metric}`, value: `${fmt(perSecond)} tasks/s` });
    }
  }
  return {
    ...resultHeader('ingest', ctx, startedAt),
    params: { ...params, order: 'warm-up, then rounds in ABBA order: bull, kiln, kiln, bull, …' },
    rows,
    details: {
      kilnTasksPerSecond: round(kilnRate),
      bullJobsPerSecond: round(bullRate),
      ratio: round(ratio, 3),
      phases,
      kilnRequestMs: summarize(batchMs.kiln),
      bullAddBulkMs: summarize(batchMs.bull),
      cpuSecondsKilnPhases: kilnCpu,
      cpuSecondsBullPhases: bullCpu,
      cpuMsPer100Tasks: {
        kiln: perHundred(kilnCpu, totals.kiln.tasks),
        bull: perHundred(bullCpu, totals.bull.tasks),
      },
      verification,
      diagnostics,
      profile,
    },
  };
}

function sumCpu(samples: Record<string, number>[]): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const sample of samples) {
    for (const [group, seconds] of Object.entries(sample)) sum[group] = (sum[group] ?? 0) + seconds;
  }
  return Object.fromEntries(Object.entries(sum).map(([g, s]) => [g, round(s, 2)]));
}

function perHundred(cpu: Record<string, number>, tasks: number): Record<string, number> {
  return Object.fromEntries(
    Object.entries(cpu)
      .filter(([group]) => !group.startsWith('machine'))
      .map(([group, seconds]) => [group, round((seconds * 1000 * 100) / tasks, 2)]),
  );
}

/**
 * Where a Kiln request's time goes, by replaying its parts outside the API at the same
 * concurrency: (1) the Redis side as Kiln does it — one awaited `queue.add` per task
 * (TaskDelivery.enqueueDue) — and (2) the Postgres side — token and code look-ups, the 100-row
 * INSERT in a transaction, the `enqueued_at` UPDATE.
 */
async function diagnose(
  ctx: BenchContext,
  prefix: string,
  projectId: string,
  db: Pool,
  params: { diagnostics: number; clients: number },
): Promise<{ rates: Record<string, number>; batchMs: Record<string, unknown> }> {
  const count = params.diagnostics;
  const queue = bullQueue(ctx.infra.redisUrl, prefix, 'bench.diag-sequential');
  defer('close the diagnostic Bull queue', () => queue.close());
  await queue.isReady();
  let counter = 0;
  const id = (): string =>
    Math.floor(Date.now() / 1000)
      .toString(16)
      .padStart(8, '0') +
    'd1a9d1a9d1' +
    (counter++ % 0x1000000).toString(16).padStart(6, '0');

  console.log(`[ingest] diagnostics: ${count} tasks each`);
  const sequential = await runBatches(count, BATCH, params.clients, async (size) => {
    for (let i = 0; i < size; i++) {
      const taskId = id();
      await queue.add(
        { taskId, projectId },
        { jobId: taskId, removeOnComplete: true, removeOnFail: true },
      );
    }
  });

  const code = (
    await db.query<{ id: string; latest_revision_id: string; rev: number; name: string }>(
      `SELECT id, latest_revision_id, rev, name FROM codes WHERE project_id = $1`,
      [projectId],
    )
  ).rows[0];
  const columns = [
    'id',
    'project_id',
    'code_id',
    'code_revision_id',
    'code_name',
    'code_rev',
    'status',
    'priority',
    'payload',
    'timeout',
    'delay',
    'cluster',
    'label',
    'run_at',
    'created_at',
    'updated_at',
    'attempt',
  ];
  const postgres = await runBatches(count, BATCH, params.clients, async (size) => {
    const client = await db.connect();
    try {
      await client.query(`SELECT * FROM tokens WHERE token_hash = $1 LIMIT 1`, ['0'.repeat(64)]);
      await client.query(
        `SELECT * FROM codes WHERE project_id = $1 AND name = $2 AND deleted_at IS NULL LIMIT 1`,
        [projectId, code.name],
      );
      const now = new Date();
      const values: unknown[] = [];
      const tuples: string[] = [];
      const ids: string[] = [];
      for (let i = 0; i < size; i++) {
        const taskId = id();
        ids.push(taskId);
        const row = [
          taskId,
          projectId,
          code.id,
          code.latest_revision_id,
          code.name,
          code.rev,
          'queued',
          0,
          '{}',
          3600,
          0,
          'default',
          '',
          now,
          now,
          now,
          0,
        ];
        tuples.push(`(${row.map((_, j) => `$${values.length + j + 1}`).join(', ')})`);
        values.push(...row);
      }
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO tasks (${columns.join(', ')}) VALUES ${tuples.join(', ')}
         RETURNING delay, label, attempt, percent, msg, log_size, retry_count`,
        values,
      );
      await client.query('COMMIT');
      await client.query(
        `UPDATE tasks SET enqueued_at = now() WHERE id = ANY($1) AND status = 'queued'`,
        [ids],
      );
    } finally {
      client.release();
    }
  });
  return {
    rates: {
      'Redis part alone (100 awaited queue.add per batch)': round(count / (sequential.ms / 1000)),
      'Postgres part alone (lookups + INSERT 100 + UPDATE)': round(count / (postgres.ms / 1000)),
    },
    batchMs: {
      sequentialAdds: summarize(sequential.batchMs),
      postgres: summarize(postgres.batchMs),
    },
  };
}
