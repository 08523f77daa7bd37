/**
 * hot: issue 17's performance section, in one run on one stack — the API, a scheduler and one
 * worker of KILN_BENCH_HOT_CONCURRENCY (16) slots — with `kiln-test/node-hot` (an `@kiln/fdk`
 * handler driven by its payload; `{"quiet":true}` prints nothing and returns at once):
 * 1. raw Bull's `process` with an empty handler on the same Redis, `concurrency` at a time, over
 *    jobs loaded beforehand: the ceiling of any task path on this Redis;
 * 2. the handler registered cold: tasks per second, first create to last end;
 * 3. the handler registered hot (`max_containers` KILN_BENCH_HOT_CONTAINERS, 8): after a warm-up,
 *    N tasks created 100 per request by a few clients, run to `complete` with their logs stored:
 *    tasks per second, first create to last end (Postgres' times), queued→running and
 *    create→complete; the ratios to cold (bar 50×) and to raw Bull;
 * 4. a fixed offered load (100 tasks/s, one POST every 10 ms, not waiting for the answers):
 *    queued→running p50 and p99 (bars 10 and 50 ms);
 * 5. sequential `POST …/codes/{name}/invoke` of the hot code (bars p50 20 ms, p99 60 ms), when
 *    the route exists;
 * 6. the worker's RSS with KILN_BENCH_HOT_WARM (20) warm containers, one per hot code (bar 200 MB).
 *
 * Why 16 slots for 8 containers: a hot task holds a slot from its claim to its recorded end but
 * its container only from `running` on, so the other 8 slots take, check and stage the next tasks
 * meanwhile; 8 is the most a code may ask for by default (KILN_HOT_CODE_MAX_CONTAINERS) and
 * already 4 per core here. `idle_timeout` is long (600 s) so that no phase pays for containers
 * that went idle during the one before; `max_tasks` keeps its default (1,000), so the containers
 * are replaced during the run as they would be in production.
 */
import Docker from 'dockerode';
import Redis from 'ioredis';
import { Pool } from 'pg';
import { NODE_HOT_IMAGE as NODE_HOT } from '../test/support/images';
import { sleep } from '../test/support/processes';
import { Counters, counters, statements, statementsPerTask } from './lib/counters';
import { setting } from './lib/env';
import { request } from './lib/http';
import {
  FINAL_STATUSES,
  Kiln,
  Project,
  bullQueue,
  newProject,
  queueTasks,
  removeLabelled,
  startKiln,
  tasksBody,
} from './lib/kiln';
import { monotonicUs, summarizeProfile, Window } from './lib/profile';
import { cpuBetween, defer, round, rssMiB, sampleCpu, startApp } from './lib/procs';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';
import { Summary, runBatches, summarize } from './lib/stats';

/** Built by scripts/build-hot-test-images.sh (run by scripts/build-test-images.sh). */
const HOT_CODE = 'hot';
const COLD_CODE = 'cold';
/** How long a hot code's containers may stay idle: longer than any gap between phases. */
const IDLE_TIMEOUT = 600;
/** How long an invoke waits for its task (`?wait=`). */
const INVOKE_WAIT = 30;
/** The handler prints nothing and returns at once. */
const QUIET = { quiet: true };

interface Params {
  tasks: number;
  batch: number;
  clients: number;
  warmup: number;
  cold: number;
  bullJobs: number;
  rate: number;
  rateSeconds: number;
  invokes: number;
  warm: number;
  concurrency: number;
  containers: number;
  maxTasks: number;
  lines: number;
}

/** What Postgres says of a run's tasks, times in ms since the epoch. */
interface TaskTimes {
  status: string;
  created: number;
  started: number | null;
  ended: number | null;
  logSize: number;
}

/** A run of tasks read back: the rate first create → last end, and the latencies. */
interface Figures {
  tasks: number;
  seconds: number;
  perSecond: number;
  queuedToRunningMs: Summary;
  createToCompleteMs: Summary;
  runningToEndMs: Summary;
  statuses: Record<string, number>;
  /** Tasks not `complete`, or whose log is not what the payload printed. */
  bad: number;
}

export async function hot(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params: Params = {
    tasks: setting('KILN_BENCH_HOT_TASKS', 20_000),
    batch: Math.min(100, Math.max(1, setting('KILN_BENCH_HOT_BATCH', 100))),
    clients: Math.max(1, setting('KILN_BENCH_HOT_CLIENTS', 4)),
    warmup: setting('KILN_BENCH_HOT_WARMUP', 500),
    cold: setting('KILN_BENCH_HOT_COLD_TASKS', 300),
    bullJobs: setting('KILN_BENCH_HOT_BULL_JOBS', 20_000),
    rate: Math.max(1, setting('KILN_BENCH_HOT_RATE', 100)),
    rateSeconds: setting('KILN_BENCH_HOT_RATE_SECONDS', 20),
    invokes: setting('KILN_BENCH_HOT_INVOKES', 1000),
    warm: setting('KILN_BENCH_HOT_WARM', 20),
    concurrency: Math.max(1, setting('KILN_BENCH_HOT_CONCURRENCY', 16)),
    containers: Math.max(1, setting('KILN_BENCH_HOT_CONTAINERS', 8)),
    maxTasks: Math.max(1, setting('KILN_BENCH_HOT_MAX_TASKS', 1000)),
    lines: setting('KILN_BENCH_HOT_LINES', 0),
  };
  // Quiet: nothing printed, so the log path is exercised only with KILN_BENCH_HOT_LINES > 0.
  const payload = JSON.stringify(
    params.lines > 0 ? { ...QUIET, lines: Array(params.lines).fill('x') } : QUIET,
  );
  const logSize = params.lines * 'x\n'.length;
  const check = () => ctx.deadline.check();

  const docker = new Docker({ socketPath: ctx.infra.dockerSocket });
  try {
    await docker.getImage(NODE_HOT).inspect();
  } catch (error) {
    throw new Error(
      `${NODE_HOT} is not there (run scripts/build-test-images.sh): ${(error as Error).message}`,
    );
  }
  const db = new Pool({ connectionString: ctx.infra.databaseUrl, max: 2 });
  defer('close the Postgres pool', () => db.end());
  const kiln = await startKiln(ctx.infra, 'hot', {
    workerConcurrency: params.concurrency,
    workerMetrics: true,
    profile: ctx.profile,
    env: {
      // Room for the RSS phase's warm containers (and the hot code's) on the one worker.
      KILN_HOT_MAX_CONTAINERS: String(Math.max(params.warm, params.containers)),
      KILN_HOT_CODE_MAX_CONTAINERS: String(Math.max(8, params.containers)),
    },
  });
  // After the worker stopped (it removes its hot containers itself), whatever it left.
  defer('remove the worker’s containers', async () => {
    await kiln.worker!.stop();
    await removeLabelled(docker, 'kiln.worker', kiln.workerId);
  });
  const scheduler = startApp('scheduler', kiln.env, 'hot-scheduler', ctx.profile);
  kiln.pids[scheduler.child.pid!] = 'kiln scheduler';
  const workerPid = kiln.worker!.child.pid!;
  const startRssMb = round(memoryMb(workerPid, 'VmRSS'), 1);
  const project = await newProject(kiln, 'bench-hot');
  const register = (name: string, hot?: object) =>
    project.api.ok('POST', `/2/projects/${project.id}/codes`, {
      name,
      image: NODE_HOT,
      ...(hot ? { hot } : {}),
    });
  await register(COLD_CODE);
  await register(HOT_CODE, {
    idle_timeout: IDLE_TIMEOUT,
    max_tasks: params.maxTasks,
    max_containers: params.containers,
  });
  const tasks = new TaskRuns(project, db, check);
  const redis = new Redis(ctx.infra.redisUrl, { lazyConnect: true });
  await redis.connect();
  defer('close the Redis client', () => void redis.disconnect());

  console.log(`[hot] raw Bull: ${params.bullJobs} jobs, process() ${params.concurrency} at a time`);
  const bull = await rawBullProcess(ctx, kiln.prefix, params.bullJobs, params.concurrency);
  console.log(`[hot] raw Bull: ${fmt(bull.perSecond)} jobs/s`);

  console.log(`[hot] cold: ${params.cold} tasks`);
  await tasks.run(COLD_CODE, payload, 2, params.batch, 1); // image and code looked at once
  const coldIds = await tasks.run(COLD_CODE, payload, params.cold, params.batch, params.clients);
  const cold = figures(await tasks.times(coldIds), logSize);
  console.log(`[hot] cold: ${fmt(cold.perSecond, 2)} tasks/s`);

  console.log(`[hot] hot: warm-up of ${params.warmup} tasks, then ${params.tasks}`);
  await tasks.run(HOT_CODE, payload, params.warmup, params.batch, params.clients);
  // Postgres's statistics reach its shared counters within a second (see lib/counters.ts).
  await sleep(1500);
  const countersBefore = await counters(db, redis);
  const statementsBefore = await statements(ctx.infra.databaseUrl);
  const startsBefore = await hotStarts(kiln);
  const cpuBefore = sampleCpu(kiln.pids);
  const startUs = monotonicUs();
  const hotIds = await tasks.run(HOT_CODE, payload, params.tasks, params.batch, params.clients);
  const hotWindow: Window = { startUs, endUs: monotonicUs() };
  const cpu = cpuBetween(cpuBefore, sampleCpu(kiln.pids));
  const startsAfter = await hotStarts(kiln);
  await sleep(1500);
  const countersAfter = await counters(db, redis);
  const hotStatements = statementsPerTask(
    statementsBefore,
    await statements(ctx.infra.databaseUrl),
    params.tasks,
  );
  const perHotTask = perTask(countersBefore, countersAfter, params.tasks, hotStatements?.bench);
  const hotRun = figures(await tasks.times(hotIds), logSize);
  console.log(`[hot] hot: ${fmt(hotRun.perSecond)} tasks/s`);

  const offered = params.rate * params.rateSeconds;
  console.log(`[hot] offered load: ${params.rate} tasks/s for ${params.rateSeconds} s`);
  const load = await offeredLoad(project, payload, offered, params.rate, check);
  tasks.ran(HOT_CODE, load.ids.length);
  await tasks.settle(HOT_CODE);
  const loaded = figures(await tasks.times(load.ids), logSize);

  console.log(`[hot] invoke: ${params.invokes} sequential calls`);
  const invoke = await invokes(project, payload, params.invokes, check);
  tasks.ran(HOT_CODE, invoke.calls);

  console.log(`[hot] worker RSS with ${params.warm} warm containers`);
  const rss = await warmRss(project, db, docker, kiln.workerId, workerPid, params.warm, tasks);
  const starts = await hotStarts(kiln);
  const startedInRun =
    startsBefore && startsAfter ? startsAfter.count - startsBefore.count : undefined;

  // KILN_BENCH_PROFILE=1: where the worker's and the API's CPU went during the hot run.
  let profiles;
  if (ctx.profile) {
    await kiln.worker!.stop();
    await kiln.api.stop();
    profiles = {
      worker: summarizeProfile('hot-worker', [hotWindow]),
      api: summarizeProfile('hot-api', [hotWindow]),
    };
  }

  const hotToCold = hotRun.perSecond / cold.perSecond;
  const hotToBull = hotRun.perSecond / bull.perSecond;
  const perTaskMs = (group: string) => fmt(((cpu[group] ?? 0) * 1000) / params.tasks, 2);
  const engine = ['dockerd', 'containerd', 'exited processes (containers, runc, shims)']
    .map((group) => cpu[group] ?? 0)
    .reduce((a, b) => a + b, 0);
  const rows: Row[] = [
    { metric: `raw Bull process(), empty handler`, value: `${fmt(bull.perSecond)} jobs/s` },
    {
      metric: `cold, ${params.cold} tasks (first create → last end)`,
      value: `${fmt(cold.perSecond, 2)} tasks/s`,
    },
    {
      metric: `hot, ${params.tasks} tasks (first create → last end)`,
      value: `${fmt(hotRun.perSecond)} tasks/s`,
      target: '≥ 1,000/s',
      met: hotRun.perSecond >= 1000,
    },
    {
      metric: 'hot / cold',
      value: `${fmt(hotToCold, 1)}×`,
      target: '≥ 50×',
      met: hotToCold >= 50,
    },
    { metric: 'hot / raw Bull', value: `${fmt(hotToBull, 2)}×` },
    {
      metric: 'hot run: queued→running p50 / p99',
      value: `${fmt(hotRun.queuedToRunningMs.p50)} / ${fmt(hotRun.queuedToRunningMs.p99)} ms`,
    },
    {
      metric: 'hot run: create→complete p50 / p99',
      value: `${fmt(hotRun.createToCompleteMs.p50)} / ${fmt(hotRun.createToCompleteMs.p99)} ms`,
    },
    {
      metric: `${fmt(load.perSecond)} tasks/s offered: queued→running p50`,
      value: `${fmt(loaded.queuedToRunningMs.p50, 1)} ms`,
      target: '< 10 ms',
      met: loaded.queuedToRunningMs.p50 < 10,
    },
    {
      metric: `${fmt(load.perSecond)} tasks/s offered: queued→running p99`,
      value: `${fmt(loaded.queuedToRunningMs.p99, 1)} ms`,
      target: '< 50 ms',
      met: loaded.queuedToRunningMs.p99 < 50,
    },
    ...invokeRows(invoke),
    {
      metric: `worker RSS, ${rss.warm} warm containers`,
      value: `${fmt(rss.rssMb, 1)} MB`,
      target: '< 200 MB',
      met: rss.warm === params.warm && rss.rssMb < 200,
    },
    {
      metric: 'diag: CPU ms per hot task: worker / API / Postgres / Redis / engine',
      value: [
        perTaskMs('kiln worker'),
        perTaskMs('kiln api'),
        perTaskMs('postgres'),
        perTaskMs('redis'),
        fmt((engine * 1000) / params.tasks, 2),
      ].join(' / '),
    },
    {
      metric:
        'diag: per hot task: Postgres transactions / statements / rows written / Redis commands',
      value: `${perHotTask.postgresTransactions} / ${hotStatements?.perTask ?? '?'} / ${perHotTask.postgresRowsWritten} / ${perHotTask.redisCommands}`,
    },
    {
      metric: 'diag: hot containers started in the hot run / mean start, all',
      value: starts
        ? `${startedInRun} / ${fmt((starts.seconds * 1000) / starts.count)} ms`
        : 'unknown (no metrics)',
    },
    {
      metric: 'diag: worker RSS at its start / peak over the run (VmHWM)',
      value: `${fmt(startRssMb, 1)} / ${fmt(rss.peakMb, 1)} MB`,
    },
    {
      metric: 'tasks not complete or without their log (cold / hot / offered)',
      value: `${cold.bad} / ${hotRun.bad} / ${loaded.bad}`,
    },
  ];
  return {
    ...resultHeader('hot', ctx, startedAt),
    params: {
      ...params,
      image: NODE_HOT,
      payload,
      hot: {
        idle_timeout: IDLE_TIMEOUT,
        max_tasks: params.maxTasks,
        max_containers: params.containers,
      },
      order:
        'raw Bull, cold (after 2 tasks), hot (after the warm-up), offered load, invokes, warm containers',
    },
    rows,
    details: {
      bull,
      cold,
      hot: hotRun,
      hotToCold: round(hotToCold, 2),
      hotToBull: round(hotToBull, 3),
      cpuSecondsHotRun: cpu,
      perHotTask: { ...perHotTask, postgresStatements: hotStatements?.perTask },
      hotStatementsPerTask: hotStatements?.top,
      hotContainerStarts: { inHotRun: startedInRun, all: starts },
      offeredLoad: { ...loaded, offeredPerSecond: round(load.perSecond, 1), lateMs: load.lateMs },
      invoke,
      rss: { ...rss, startMb: startRssMb },
      profiles,
    },
  };
}

/**
 * Creates tasks through the API and waits for their ends, keeping count per code of the tasks
 * created so far, so that "all ended" is one indexed count of the code's final tasks.
 */
class TaskRuns {
  private readonly created = new Map<string, number>();

  constructor(
    private readonly project: Project,
    private readonly db: Pool,
    private readonly check: () => void,
  ) {}

  /** Creates `count` tasks of `code`, `batch` a request from `clients` loops; waits for all. */
  async run(code: string, payload: string, count: number, batch: number, clients: number) {
    const ids: string[] = [];
    const full = tasksBody(batch, code, payload);
    await runBatches(
      count,
      batch,
      clients,
      async (size) => {
        const body = size === batch ? full : tasksBody(size, code, payload);
        ids.push(...(await queueTasks(this.project, size, body)).ids);
      },
      this.check,
    );
    this.ran(code, count);
    await this.settle(code);
    return ids;
  }

  /** `count` more tasks of `code` were created elsewhere. */
  ran(code: string, count: number): void {
    this.created.set(code, (this.created.get(code) ?? 0) + count);
  }

  /** Waits until every task created of `code` has a final status. */
  async settle(code: string): Promise<void> {
    const expected = this.created.get(code) ?? 0;
    for (;;) {
      this.check();
      const { rows } = await this.db.query<{ n: number }>(
        `/* bench */ SELECT count(*)::int AS n FROM tasks
          WHERE project_id = $1 AND code_name = $2 AND status = ANY($3)`,
        [this.project.id, code, FINAL_STATUSES],
      );
      if (rows[0].n >= expected) return;
      await sleep(200);
    }
  }

  /** The tasks' status, times (ms since the epoch) and log size, from Postgres. */
  async times(ids: string[]): Promise<TaskTimes[]> {
    const { rows } = await this.db.query<Record<string, string | null>>(
      `/* bench */ SELECT status, extract(epoch FROM created_at) * 1000 AS created,
              extract(epoch FROM start_time) * 1000 AS started,
              extract(epoch FROM end_time) * 1000 AS ended, log_size
         FROM tasks WHERE id = ANY($1)`,
      [ids],
    );
    const ms = (value: string | null) => (value === null ? null : Number(value));
    return rows.map((row) => ({
      status: row.status!,
      created: Number(row.created),
      started: ms(row.started),
      ended: ms(row.ended),
      logSize: Number(row.log_size),
    }));
  }
}

/** What one task of a run cost Postgres and Redis (Redis: the whole server's commands). */
function perTask(before: Counters, after: Counters, tasks: number, benchTransactions = 0) {
  const per = (value: number, digits: number) => round(value / tasks, digits);
  return {
    // Less the benchmark's own polls (each a transaction of its own).
    postgresTransactions: per(after.xacts - before.xacts - benchTransactions, 2),
    postgresRowsWritten: per(after.written - before.written, 2),
    walBytes: per(after.walBytes - before.walBytes, 0),
    redisCommands: per(after.redisCalls - before.redisCalls, 1),
  };
}

/** Rate (first create → last end) and latencies of a set of tasks. */
function figures(tasks: TaskTimes[], logSize: number): Figures {
  const statuses: Record<string, number> = {};
  for (const task of tasks) statuses[task.status] = (statuses[task.status] ?? 0) + 1;
  const ran = tasks.filter((task) => task.started !== null && task.ended !== null);
  const first = tasks.reduce((min, task) => Math.min(min, task.created), Infinity);
  const last = ran.reduce((max, task) => Math.max(max, task.ended!), -Infinity);
  const seconds = (last - first) / 1000;
  return {
    tasks: tasks.length,
    seconds: round(seconds, 3),
    perSecond: round(tasks.length / seconds, 2),
    queuedToRunningMs: summarize(ran.map((task) => task.started! - task.created)),
    createToCompleteMs: summarize(ran.map((task) => task.ended! - task.created)),
    runningToEndMs: summarize(ran.map((task) => task.ended! - task.started!)),
    statuses,
    bad: tasks.filter((task) => task.status !== 'complete' || task.logSize !== logSize).length,
  };
}

/**
 * Raw Bull's ceiling: `jobs` empty jobs loaded first (100 per `addBulk`), then `process` with an
 * empty handler, `concurrency` at a time, on Kiln's connection settings and Redis, a queue of its
 * own; jobs per second from the `process` call to the last `completed`.
 */
async function rawBullProcess(
  ctx: BenchContext,
  prefix: string,
  jobs: number,
  concurrency: number,
): Promise<{ jobs: number; seconds: number; perSecond: number }> {
  const queue = bullQueue(ctx.infra.redisUrl, prefix, 'bench.raw-bull-process');
  defer('close the raw Bull queue', () => queue.close());
  await queue.isReady();
  await runBatches(jobs, 100, 4, async (size, index) => {
    await queue.addBulk(
      Array.from({ length: size }, (_, i) => ({
        data: { n: index * 100 + i },
        opts: { removeOnComplete: true, removeOnFail: true },
      })),
    );
  });
  let done = 0;
  let lastAt = 0;
  queue.on('completed', () => {
    done++;
    lastAt = performance.now();
  });
  const started = performance.now();
  queue
    .process(concurrency, async () => undefined)
    .catch((error: Error) => console.error(`[hot] raw Bull: ${error.message}`));
  while (done < jobs) {
    ctx.deadline.check();
    await sleep(50);
  }
  await queue.close();
  const seconds = (lastAt - started) / 1000;
  return { jobs, seconds: round(seconds, 3), perSecond: round(jobs / seconds) };
}

/**
 * Hot containers the worker started so far and their start seconds summed
 * (`kiln_hot_container_start_seconds`), from its `/metrics`; undefined with metrics off.
 */
async function hotStarts(kiln: Kiln): Promise<{ count: number; seconds: number } | undefined> {
  if (!kiln.workerMetricsUrl) return undefined;
  const answer = await request('GET', kiln.workerMetricsUrl, { token: kiln.adminToken }).catch(
    () => undefined,
  );
  if (answer?.status !== 200) return undefined;
  const value = (name: string) =>
    Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(answer.text)?.[1] ?? 0);
  return {
    count: value('kiln_hot_container_start_seconds_count'),
    seconds: value('kiln_hot_container_start_seconds_sum'),
  };
}

/**
 * `count` tasks of the hot code, one per request, the i-th sent at start + i/rate whatever the
 * answers before it (an open loop, as independent clients would send them).
 */
async function offeredLoad(
  project: Project,
  payload: string,
  count: number,
  rate: number,
  check: () => void,
): Promise<{ ids: string[]; perSecond: number; lateMs: Summary }> {
  const body = tasksBody(1, HOT_CODE, payload);
  const interval = 1000 / rate;
  const sends: Promise<string>[] = [];
  const late: number[] = [];
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    check();
    const wait = started + i * interval - performance.now();
    if (wait > 0) await sleep(wait);
    late.push(Math.max(0, -wait));
    sends.push(queueTasks(project, 1, body).then((queued) => queued.ids[0]));
  }
  const sentFor = (performance.now() - started) / 1000;
  return { ids: await Promise.all(sends), perSecond: count / sentFor, lateMs: summarize(late) };
}

interface Invokes {
  /** Why none ran, when the route is not there. */
  skipped?: string;
  calls: number;
  failed: number;
  ms?: Summary;
}

/**
 * `count` sequential invokes of the hot code, each timed from request to answer, after one that
 * checks the route is there (a 404 for a code that exists: no route, so the phase is skipped).
 */
async function invokes(
  project: Project,
  payload: string,
  count: number,
  check: () => void,
): Promise<Invokes> {
  if (count === 0) return { skipped: 'KILN_BENCH_HOT_INVOKES=0', calls: 0, failed: 0 };
  const path = `/2/projects/${project.id}/codes/${HOT_CODE}/invoke?wait=${INVOKE_WAIT}`;
  const probe = await project.api.call('POST', path, { payload });
  if (probe.status === 404) {
    console.log(`[hot] invoke: skipped, the route answers 404: ${probe.text.slice(0, 200)}`);
    return { skipped: 'the route answers 404', calls: 1, failed: 0 };
  }
  if (probe.status !== 200) throw new Error(`invoke: ${probe.status} ${probe.text.slice(0, 500)}`);
  const ms: number[] = [];
  let failed = 0;
  for (let i = 0; i < count; i++) {
    check();
    const answer = await project.api.call('POST', path, { payload });
    ms.push(answer.ms);
    if (answer.status !== 200 || answer.body.status !== 'complete') failed++;
  }
  return { calls: count + 1, failed, ms: summarize(ms, 2) };
}

function invokeRows(invoke: Invokes): Row[] {
  if (!invoke.ms) {
    return [{ metric: 'invoke of the hot code', value: `skipped: ${invoke.skipped}` }];
  }
  return [
    {
      metric: `invoke of the hot code, ${invoke.ms.n} in a row: p50`,
      value: `${fmt(invoke.ms.p50, 1)} ms`,
      target: '< 20 ms',
      met: invoke.ms.p50 < 20,
    },
    {
      metric: 'invoke p99',
      value: `${fmt(invoke.ms.p99, 1)} ms`,
      target: '< 60 ms',
      met: invoke.ms.p99 < 60,
    },
    { metric: 'invokes not complete', value: String(invoke.failed) },
  ];
}

/**
 * `warm` hot codes of one container each, one task each: their containers stay warm (and the hot
 * code's idle ones are stopped to make room, least recently used first). Once the engine shows the
 * `warm` containers running, the worker's VmRSS is read five times a second apart (the last
 * reported, the highest kept) and its VmHWM, the peak of the whole run.
 */
async function warmRss(
  project: Project,
  db: Pool,
  docker: Docker,
  workerId: string,
  workerPid: number,
  warm: number,
  tasks: TaskRuns,
): Promise<{ warm: number; rssMb: number; maxRssMb: number; peakMb: number }> {
  const names = Array.from({ length: warm }, (_, i) => `warm-${i + 1}`);
  for (const name of names) {
    await project.api.ok('POST', `/2/projects/${project.id}/codes`, {
      name,
      image: NODE_HOT,
      hot: { idle_timeout: IDLE_TIMEOUT, max_containers: 1 },
    });
  }
  for (const name of names) {
    await queueTasks(project, 1, tasksBody(1, name, JSON.stringify(QUIET)));
    tasks.ran(name, 1);
  }
  for (const name of names) await tasks.settle(name);
  const { rows } = await db.query<{ id: string }>(
    `SELECT latest_revision_id AS id FROM codes WHERE project_id = $1 AND name = ANY($2)`,
    [project.id, names],
  );
  const revisions = new Set(rows.map((row) => row.id));
  const running = async () =>
    (
      await docker.listContainers({
        filters: { label: [`kiln.worker=${workerId}`], status: ['running'] },
      })
    ).filter((container) => revisions.has(container.Labels['kiln.hot'])).length;
  const until = Date.now() + 60_000;
  let seen = await running();
  while (seen < warm && Date.now() < until) {
    await sleep(500);
    seen = await running();
  }
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    await sleep(1000);
    samples.push(memoryMb(workerPid, 'VmRSS'));
  }
  return {
    warm: await running(),
    rssMb: round(samples[samples.length - 1], 1),
    maxRssMb: round(Math.max(...samples), 1),
    peakMb: round(memoryMb(workerPid, 'VmHWM'), 1),
  };
}

/** A process's VmRSS or VmHWM in MB (10^6 bytes, as the bar's). */
function memoryMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  return (rssMiB(pid, field) * 2 ** 20) / 1e6;
}
