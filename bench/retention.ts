/**
 * retention: with 1,000,000 finished tasks past the retention (30 days) spread over several
 * projects (1 in 10 with two log chunks, 1 in 10 with a webhook delivery) and 100,000 recent
 * finished ones beside them, how fast are tasks created through the API while the scheduler's
 * leader purges the old ones, against the same with a scheduler that has nothing to purge? And
 * how fast does the purge go, and does it delete all the old tasks, their logs and deliveries,
 * and nothing else? Target: creation with the purge ≥ 0.8× creation without.
 *
 * Windows of KILN_BENCH_RETENTION_WINDOW seconds, alternating A (a scheduler with
 * KILN_TASK_RETENTION_DAYS=3650: it runs everything a scheduler runs, its passes find nothing)
 * and B (a scheduler with the default 30 days: purging), A first and last; the scheduler is
 * replaced between windows (stopped with SIGTERM, so each B also shows the purge carrying on
 * after a restart). Each window creates tasks as the ingest benchmark does (100 a request,
 * KILN_BENCH_RETENTION_CLIENTS loops); after it, the tasks it created are deleted again (Postgres,
 * then Redis), so that every window starts alike and the reconciler never has more than one
 * window's tasks to look at. After the last window a purging scheduler runs until its pass ends.
 */
import { Pool } from 'pg';
import { setting } from './lib/env';
import {
  defaultQueue,
  deleteKeys,
  Kiln,
  newProject,
  Project,
  queueTasks,
  startKiln,
  tasksBody,
} from './lib/kiln';
import { App, cpuBetween, defer, round, sampleCpu, startApp } from './lib/procs';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';
import { summarize, Summary } from './lib/stats';

const BATCH = 100;
/** Fixed middles of the loaded tasks' ids (hex): old ones, and recent ones that must stay. */
const OLD_TAG = 'de1e7e0001';
const KEPT_TAG = 'de1e7e0002';
const DAY_MS = 86_400_000;

interface Window {
  kind: 'A' | 'B';
  seconds: number;
  tasks: number;
  tasksPerSecond: number;
  requestMs: Summary;
  /** Old tasks the purge deleted during the window (B), and per second it ran. */
  purged: number;
  purgedPerSecond: number;
  /** A B window in which the purge got to the end: it did not run all the window. */
  purgeEndedWithin: boolean;
  /** Seconds the purging scheduler led in this window (B). */
  purgeSeconds: number;
  cpu: Record<string, number>;
}

export async function retention(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    oldTasks: setting('KILN_BENCH_RETENTION_OLD', 1_000_000),
    keptTasks: setting('KILN_BENCH_RETENTION_KEPT', 100_000),
    projects: Math.max(1, setting('KILN_BENCH_RETENTION_PROJECTS', 10)),
    windowSeconds: setting('KILN_BENCH_RETENTION_WINDOW', 15),
    /** B windows; there is one A window more (first and last). */
    purgeWindows: Math.max(1, setting('KILN_BENCH_RETENTION_WINDOWS', 3)),
    clients: Math.max(1, setting('KILN_BENCH_RETENTION_CLIENTS', 4)),
    warmup: setting('KILN_BENCH_RETENTION_WARMUP', 2_000),
    retentionDays: 30,
    batch: 1000,
  };
  if (params.oldTasks + params.keptTasks >= 0x1000000) {
    throw new Error('KILN_BENCH_RETENTION_OLD + _KEPT must be < 16,777,216');
  }
  const db = new Pool({ connectionString: ctx.infra.databaseUrl, max: 2 });
  defer('close the Postgres pool', () => db.end());
  const kiln = await startKiln(ctx.infra, 'retention', {
    profile: ctx.profile,
    env: { KILN_QUOTA_QUEUED_TASKS: String(100_000_000) },
  });
  const creator = await newProject(kiln, 'bench-retention-creator');
  const owners: Project[] = [];
  for (let i = 0; i < params.projects; i++) {
    owners.push(await newProject(kiln, `bench-retention-old-${i}`));
  }

  const load = await loadHistory(db, owners, params);

  let generation = 0;
  /** Starts a scheduler and resolves once it leads, with the time it did (monotonic ms). */
  const startScheduler = async (purging: boolean): Promise<{ app: App; leadingAt: number }> => {
    generation++;
    const app = startApp(
      'scheduler',
      {
        ...kiln.env,
        KILN_SCHEDULER_ID: `retention-${purging ? 'purge' : 'idle'}-${generation}`,
        // Nothing is old enough for the idle one; the purging one keeps Kiln's defaults.
        ...(purging
          ? {}
          : { KILN_TASK_RETENTION_DAYS: '3650', KILN_WEBHOOK_RETENTION_DAYS: '3650' }),
      },
      `retention-scheduler-${generation}`,
      ctx.profile,
    );
    await app.waitFor(/leader, term \d+/, 60_000);
    return { app, leadingAt: performance.now() };
  };
  const oldLeft = async (): Promise<number> =>
    Number(
      (
        await db.query<{ n: string }>(
          `SELECT count(*) AS n FROM tasks
            WHERE project_id = ANY($1) AND substr(id, 9, 10) = $2`,
          [owners.map((owner) => owner.id), OLD_TAG],
        )
      ).rows[0].n,
    );

  console.log(`[retention] warm-up: ${params.warmup} tasks`);
  await createTasks(creator, { count: params.warmup }, params.clients, ctx);
  await dropCreated(ctx, db, kiln, creator);

  const windows: Window[] = [];
  let purgeSeconds = 0;
  const kinds: ('A' | 'B')[] = [];
  for (let i = 0; i < params.purgeWindows; i++) kinds.push('A', 'B');
  kinds.push('A');
  for (const kind of kinds) {
    const leftBefore = kind === 'B' ? await oldLeft() : 0;
    const scheduler = await startScheduler(kind === 'B');
    const groups = { ...kiln.pids, [scheduler.app.child.pid!]: 'kiln scheduler' };
    const before = sampleCpu(groups);
    const run = await createTasks(
      creator,
      { ms: params.windowSeconds * 1000 },
      params.clients,
      ctx,
    );
    const cpu = cpuBetween(before, sampleCpu(groups));
    await scheduler.app.stop();
    // The purge ran from the moment it led to its stop.
    const ranSeconds = (performance.now() - scheduler.leadingAt) / 1000;
    const leftAfter = kind === 'B' ? await oldLeft() : 0;
    const purged = leftBefore - leftAfter;
    if (kind === 'B') purgeSeconds += ranSeconds;
    const window: Window = {
      kind,
      seconds: round(run.ms / 1000, 2),
      tasks: run.tasks,
      tasksPerSecond: round(run.tasks / (run.ms / 1000)),
      requestMs: summarize(run.requestMs),
      purged,
      purgedPerSecond: kind === 'B' ? round(purged / ranSeconds) : 0,
      purgeEndedWithin: kind === 'B' && leftAfter === 0,
      purgeSeconds: kind === 'B' ? round(ranSeconds, 2) : 0,
      cpu,
    };
    windows.push(window);
    console.log(
      `[retention] ${kind}: ${fmt(window.tasks)} tasks in ${fmt(window.seconds, 1)} s = ${fmt(window.tasksPerSecond)}/s` +
        (kind === 'B'
          ? `; purged ${fmt(purged)} old tasks in ${fmt(ranSeconds, 1)} s (${fmt(window.purgedPerSecond)}/s)`
          : ''),
    );
    await dropCreated(ctx, db, kiln, creator);
  }

  // The rest of the purge, alone: until a pass says it got to the end.
  const leftAfterWindows = await oldLeft();
  console.log(`[retention] purging the remaining ${fmt(leftAfterWindows)} old tasks`);
  const finishing = await startScheduler(true);
  const pass: { ended: boolean; failed?: Error } = { ended: false };
  const passEnded = finishing.app
    .waitFor(/retention: deleted \d+ tasks[^\n]* in [\d.]+ s(?! \(stopped)/, 3600_000)
    .then(
      () => (pass.ended = true),
      (error: Error) => {
        pass.ended = true;
        pass.failed = error;
      },
    );
  const progress: { t: number; left: number }[] = [];
  while (!pass.ended) {
    ctx.deadline.check();
    await Promise.race([passEnded, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    const left = await oldLeft();
    const t = round((performance.now() - finishing.leadingAt) / 1000);
    progress.push({ t, left });
    console.log(`[retention]   ${fmt(left)} old tasks left after ${fmt(t)} s`);
  }
  if (pass.failed) throw pass.failed;
  const finishSeconds = (performance.now() - finishing.leadingAt) / 1000;
  await finishing.app.stop();
  purgeSeconds += finishSeconds;

  const verification = await verify(db, owners);
  const a = windows.filter((w) => w.kind === 'A');
  const b = windows.filter((w) => w.kind === 'B');
  const rate = (list: Window[]) =>
    list.reduce((sum, w) => sum + w.tasks, 0) / list.reduce((sum, w) => sum + w.seconds, 0);
  const aRate = rate(a);
  const bRate = rate(b);
  const ratio = bRate / aRate;
  const purgedDuringWindows = b.reduce((sum, w) => sum + w.purged, 0);
  const purgeRate = load.oldTasks / purgeSeconds;
  const purgeEnded = windows.some((w) => w.purgeEndedWithin);
  const finishRate = leftAfterWindows / finishSeconds;
  const allGone =
    verification.oldTasksLeft === 0 &&
    verification.oldChunksLeft === 0 &&
    verification.oldDeliveriesLeft === 0;
  const keptWhole =
    verification.keptTasks === load.keptTasks &&
    verification.keptChunks === load.keptChunks &&
    verification.keptDeliveries === load.keptDeliveries;
  const rows: Row[] = [
    {
      metric: 'history loaded',
      value: `${fmt(load.oldTasks)} old finished tasks (${fmt(load.oldChunks)} log chunks, ${fmt(load.oldDeliveries)} deliveries) + ${fmt(load.keptTasks)} recent, ${params.projects} projects`,
    },
    {
      metric: 'creation, no purge (A windows)',
      value: `${a.map((w) => fmt(w.tasksPerSecond)).join(', ')} tasks/s (all: ${fmt(aRate)})`,
    },
    {
      metric: 'creation, purge running (B windows)',
      value: `${b.map((w) => fmt(w.tasksPerSecond)).join(', ')} tasks/s (all: ${fmt(bRate)})`,
    },
    {
      metric: 'creation with purge / without',
      value: `${fmt(ratio, 2)}×${purgeEnded ? ' (the purge ended within a B window)' : ''}`,
      target: '≥ 0.80×',
      met: ratio >= 0.8,
    },
    {
      metric: 'purge rate while tasks are created (B)',
      value: `${fmt(purgedDuringWindows / b.reduce((sum, w) => sum + w.purgeSeconds, 0))} tasks/s`,
    },
    {
      metric: 'purge rate alone (the rest)',
      value: `${fmt(finishRate)} tasks/s (${fmt(leftAfterWindows)} in ${fmt(finishSeconds, 1)} s)`,
    },
    {
      metric: 'purge overall',
      value: `${fmt(load.oldTasks)} tasks in ${fmt(purgeSeconds, 1)} s = ${fmt(purgeRate)} tasks/s`,
    },
    {
      metric: 'all old tasks, logs, deliveries deleted',
      value: allGone ? 'yes' : `NO ${JSON.stringify(verification)}`,
    },
    {
      metric: 'recent tasks, logs, deliveries kept',
      value: keptWhole ? 'yes' : `NO ${JSON.stringify(verification)}`,
    },
  ];
  return {
    ...resultHeader('retention', ctx, startedAt),
    params: {
      ...params,
      order: `warm-up, then ${kinds.join(', ')}, then the purge alone to its end`,
    },
    rows,
    details: {
      ratio: round(ratio, 3),
      aTasksPerSecond: round(aRate),
      bTasksPerSecond: round(bRate),
      windows,
      purge: {
        seconds: round(purgeSeconds, 1),
        tasksPerSecond: round(purgeRate),
        duringWindows: purgedDuringWindows,
        afterWindows: leftAfterWindows,
        afterWindowsSeconds: round(finishSeconds, 1),
        progress,
      },
      load,
      verification,
    },
  };
}

/**
 * Creates tasks in the `creator` project for `ms`, or `count` of them, from `clients` loops of
 * 100-task requests (as the ingest benchmark does); returns how many, the wall time and each
 * request's time.
 */
async function createTasks(
  creator: Project,
  until: { ms: number } | { count: number },
  clients: number,
  ctx: BenchContext,
): Promise<{ tasks: number; ms: number; requestMs: number[] }> {
  const body = tasksBody(BATCH);
  const started = performance.now();
  const requestMs: number[] = [];
  let tasks = 0;
  let issued = 0;
  const more = (): boolean =>
    'ms' in until ? performance.now() - started < until.ms : issued < until.count;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (more()) {
        issued += BATCH;
        ctx.deadline.check();
        const t0 = performance.now();
        await queueTasks(creator, BATCH, body);
        requestMs.push(performance.now() - t0);
        tasks += BATCH;
      }
    }),
  );
  return { tasks, ms: performance.now() - started, requestMs };
}

/** Deletes what the creator project queued (Postgres first, so the reconciler misses nothing). */
async function dropCreated(ctx: BenchContext, db: Pool, kiln: Kiln, creator: Project) {
  await db.query(`DELETE FROM tasks WHERE project_id = $1`, [creator.id]);
  await deleteKeys(ctx.infra.redisUrl, `${kiln.prefix}:${defaultQueue(creator.id)}`);
  await db.query('VACUUM ANALYZE tasks');
}

interface Loaded {
  oldTasks: number;
  oldChunks: number;
  oldDeliveries: number;
  keptTasks: number;
  keptChunks: number;
  keptDeliveries: number;
  insertSeconds: number;
  vacuumSeconds: number;
  tasksTableSize: string;
}

/**
 * Inserts the history with INSERT … SELECT generate_series, 100,000 tasks a statement, spread
 * over the `owners` round-robin: old ones ending from 31 days ago back (5 s apart), recent ones
 * from 1 day ago back (1 s apart). Every tenth task has two log chunks of 100 bytes, every
 * tenth (another) a delivered webhook delivery. Then VACUUM ANALYZE.
 */
async function loadHistory(
  db: Pool,
  owners: Project[],
  params: { oldTasks: number; keptTasks: number; retentionDays: number },
): Promise<Loaded> {
  const codes = (
    await db.query<{ project_id: string; id: string; latest_revision_id: string }>(
      `SELECT project_id, id, latest_revision_id FROM codes WHERE project_id = ANY($1)`,
      [owners.map((owner) => owner.id)],
    )
  ).rows;
  const byProject = new Map(codes.map((code) => [code.project_id, code]));
  const projectIds = owners.map((owner) => owner.id);
  const codeIds = projectIds.map((id) => byProject.get(id)!.id);
  const revisionIds = projectIds.map((id) => byProject.get(id)!.latest_revision_id);
  const base = Date.now();
  // The task of series number g: its id, owner and times, the same in each statement below.
  const generated = `
    SELECT g,
           lpad(to_hex(floor(extract(epoch FROM ts.created))::bigint), 8, '0') || $1
             || lpad(to_hex(g), 6, '0') AS id,
           ($2::text[])[1 + g % $9] AS project_id,
           ($3::text[])[1 + g % $9] AS code_id,
           ($4::text[])[1 + g % $9] AS revision_id,
           ts.created, ts.ended
      FROM generate_series($5::int, $6::int) AS g,
           LATERAL (SELECT to_timestamp(($7::bigint - g::bigint * $8::bigint) / 1000.0) AS ended) e,
           LATERAL (SELECT e.ended - interval '2 seconds' AS created, e.ended) ts`;
  const insertSql = `
    INSERT INTO tasks (id, project_id, code_id, code_revision_id, code_name, code_rev, status,
                       priority, payload, timeout, delay, cluster, label, attempt,
                       run_at, enqueued_at, created_at, updated_at, start_time, end_time,
                       duration_ms, exit_code, log_size)
    SELECT id, project_id, code_id, revision_id, 'bench', 1,
           (ARRAY['complete','complete','complete','error','cancelled','timeout','killed'])[1 + g % 7],
           0, '{}', 3600, 0, 'default', '', 1,
           created, created, created, ended, created, ended, 1000, 0, 0
      FROM (${generated}) t`;
  const chunksSql = `
    INSERT INTO task_log_chunks (task_id, seq, stream, data)
    SELECT t.id, s.seq, 1, repeat('x', 99) || chr(10)
      FROM (${generated}) t, generate_series(0, 1) AS s(seq)
     WHERE t.g % 10 = 3`;
  const deliveriesSql = `
    INSERT INTO webhook_deliveries (id, seq, project_id, url, message_id, event_type, task_id,
                                    body, state, attempt, status_code, created_at, updated_at,
                                    delivered_at)
    SELECT kiln_delivery_id(t.seq), t.seq, t.project_id, 'https://hooks.example.com/bench',
           'msg_' || t.id || '_complete_1', 'task.complete', t.id, '{}', 'delivered', 1, 200,
           t.ended, t.ended, t.ended
      FROM (SELECT g.*, nextval('webhook_delivery_seq') AS seq
              FROM (${generated}) g WHERE g.g % 10 = 7) t`;

  const started = performance.now();
  const loadRange = async (tag: string, count: number, firstEndMs: number, stepMs: number) => {
    const got = { tasks: 0, chunks: 0, deliveries: 0 };
    const CHUNK = 100_000;
    for (let from = 1; from <= count; from += CHUNK) {
      const to = Math.min(count, from + CHUNK - 1);
      const values = [
        tag,
        projectIds,
        codeIds,
        revisionIds,
        from,
        to,
        firstEndMs + stepMs,
        stepMs,
        projectIds.length,
      ];
      got.tasks += (await db.query(insertSql, values)).rowCount ?? 0;
      got.chunks += (await db.query(chunksSql, values)).rowCount ?? 0;
      got.deliveries += (await db.query(deliveriesSql, values)).rowCount ?? 0;
      process.stdout.write(`\r[retention]   ${tag}: ${fmt(got.tasks)} tasks`);
    }
    process.stdout.write('\n');
    return got;
  };
  console.log(
    `[retention] inserting ${fmt(params.oldTasks)} old and ${fmt(params.keptTasks)} recent finished tasks`,
  );
  const old = await loadRange(
    OLD_TAG,
    params.oldTasks,
    base - (params.retentionDays + 1) * DAY_MS,
    5000,
  );
  const kept = await loadRange(KEPT_TAG, params.keptTasks, base - DAY_MS, 1000);
  const insertSeconds = (performance.now() - started) / 1000;
  const vacuumStarted = performance.now();
  await db.query('VACUUM ANALYZE tasks, task_log_chunks, webhook_deliveries');
  const vacuumSeconds = (performance.now() - vacuumStarted) / 1000;
  const size = (
    await db.query<{ size: string }>(
      `SELECT pg_size_pretty(pg_total_relation_size('tasks')) AS size`,
    )
  ).rows[0].size;
  console.log(
    `[retention]   ${fmt(insertSeconds, 1)} s insert + ${fmt(vacuumSeconds, 1)} s VACUUM ANALYZE; tasks table ${size}`,
  );
  return {
    oldTasks: old.tasks,
    oldChunks: old.chunks,
    oldDeliveries: old.deliveries,
    keptTasks: kept.tasks,
    keptChunks: kept.chunks,
    keptDeliveries: kept.deliveries,
    insertSeconds: round(insertSeconds, 1),
    vacuumSeconds: round(vacuumSeconds, 1),
    tasksTableSize: size,
  };
}

/** What is left of the loaded history, by the tags in the ids. */
async function verify(db: Pool, owners: Project[]) {
  const [row] = (
    await db.query<Record<string, string>>(
      `SELECT
         (SELECT count(*) FROM tasks WHERE project_id = ANY($1) AND substr(id, 9, 10) = $2) AS old_tasks,
         (SELECT count(*) FROM tasks WHERE project_id = ANY($1) AND substr(id, 9, 10) = $3) AS kept_tasks,
         (SELECT count(*) FROM task_log_chunks WHERE substr(task_id, 9, 10) = $2) AS old_chunks,
         (SELECT count(*) FROM task_log_chunks WHERE substr(task_id, 9, 10) = $3) AS kept_chunks,
         (SELECT count(*) FROM webhook_deliveries WHERE substr(task_id, 9, 10) = $2) AS old_deliveries,
         (SELECT count(*) FROM webhook_deliveries WHERE substr(task_id, 9, 10) = $3) AS kept_deliveries`,
      [owners.map((owner) => owner.id), OLD_TAG, KEPT_TAG],
    )
  ).rows;
  return {
    oldTasksLeft: Number(row.old_tasks),
    oldChunksLeft: Number(row.old_chunks),
    oldDeliveriesLeft: Number(row.old_deliveries),
    keptTasks: Number(row.kept_tasks),
    keptChunks: Number(row.kept_chunks),
    keptDeliveries: Number(row.kept_deliveries),
  };
}
