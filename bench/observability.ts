/**
 * observability: what Kiln's metrics, JSON lines and log drains cost (issue 15's bar: at most 5 %
 * of ingest and dispatch throughput), measured with them on and off in the same run.
 *
 * Each round starts a whole Kiln (API, one worker, scheduler) in one of two modes, runs an ingest
 * phase and a dispatch phase on it, and stops it; rounds go in ABBA order (on, off, off, on, …) so
 * that drift favours neither.
 * - `on`, as an operator runs Kiln: metrics counted and scraped every KILN_BENCH_OBS_SCRAPE_SECONDS
 *   (5; the shipped deploy/prometheus example scrapes every 15) from the three processes (API `/metrics`, the worker's and the scheduler's health ports),
 *   every JSON line written (`KILN_LOG_LEVEL=log`: access lines, task transitions), and a syslog
 *   drain on the project, shipped by the scheduler to a TCP receiver of this process.
 * - `off`: `KILN_METRICS=0`, `KILN_LOG_LEVEL=warn`, no drain, nothing scraped.
 * Ingest: tasks created through `POST …/tasks` (100 a request, 4 clients) for a cluster no worker
 * serves (they pile up, as in `ingest`). Dispatch: trivial container tasks that print 21 lines
 * each, run to the end by the worker (the drain gets every line). Both modes' figures are sums over
 * their rounds; the paired ratios (each `on` round against the `off` round beside it) show the
 * spread.
 */
import { createServer, Server } from 'node:net';
import { Pool } from 'pg';
import { freePortFrom, sleep } from '../test/support/processes';
import { setting } from './lib/env';
import { Api, request } from './lib/http';
import { FINAL_STATUSES, Project, deleteKeys, newProject, startKiln } from './lib/kiln';
import { cpuBetween, defer, round, sampleCpu, startApp } from './lib/procs';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';
import { runBatches, summarize } from './lib/stats';
import { monotonicUs, ProfileSummary, summarizeProfile } from './lib/profile';

type Mode = 'on' | 'off';
const PARKED = 'parked';
const DISPATCH_PAYLOAD = JSON.stringify({ lines: 20 });
/** What the test image prints for it (the payload, then "line 1" … "line 20"), lines joined. */
const EXPECTED_TEXT =
  DISPATCH_PAYLOAD + Array.from({ length: 20 }, (_, i) => `line ${i + 1}`).join('');

interface Round {
  mode: Mode;
  ingestTasks: number;
  ingestSeconds: number;
  dispatchTasks: number;
  dispatchSeconds: number;
  scrapes: number;
  /**
   * `on`: tasks whose text the drain did not get whole and once, messages beyond the lines
   * printed (lines split across the worker's flushes), and how long after the tasks ended.
   */
  drainMissing?: number;
  drainExtra?: number;
  drainCatchUpSeconds?: number;
  /** CPU seconds by process group during the measured ingest and dispatch phases. */
  ingestCpu: Record<string, number>;
  dispatchCpu: Record<string, number>;
  /** With KILN_BENCH_PROFILE=1: the API's CPU profile over the measured ingest phase. */
  ingestProfile?: ProfileSummary;
}

export async function observability(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    rounds: Math.max(1, setting('KILN_BENCH_OBS_ROUNDS', 6)),
    ingestTasks: setting('KILN_BENCH_OBS_INGEST_TASKS', 150_000),
    ingestWarmup: setting('KILN_BENCH_OBS_INGEST_WARMUP', 2_000),
    clients: setting('KILN_BENCH_OBS_CLIENTS', 4),
    dispatchTasks: setting('KILN_BENCH_OBS_DISPATCH_TASKS', 100),
    dispatchWarmup: setting('KILN_BENCH_OBS_DISPATCH_WARMUP', 4),
    concurrency: setting('KILN_BENCH_OBS_CONCURRENCY', 4),
    scrapeSeconds: setting('KILN_BENCH_OBS_SCRAPE_SECONDS', 5),
  };
  const db = new Pool({ connectionString: ctx.infra.databaseUrl, max: 2 });
  defer('close the Postgres pool', () => db.end());
  const receiver = await syslogReceiver();
  defer('close the syslog receiver', () => receiver.close());

  const rounds: Round[] = [];
  for (let r = 0; r < params.rounds * 2; r++) {
    // ABBA: on, off, off, on, on, off, …
    const mode: Mode = [0, 3].includes(r % 4) ? 'on' : 'off';
    ctx.deadline.check();
    rounds.push(await runRound(ctx, db, receiver, mode, r, params));
    const last = rounds[rounds.length - 1];
    console.log(
      `[observability] round ${r + 1} (${mode}): ingest ${fmt(last.ingestTasks / last.ingestSeconds)}/s, ` +
        `dispatch ${fmt(last.dispatchTasks / last.dispatchSeconds, 2)}/s`,
    );
  }

  const total = (
    mode: Mode,
    key: 'ingestTasks' | 'ingestSeconds' | 'dispatchTasks' | 'dispatchSeconds',
  ) => rounds.filter((r) => r.mode === mode).reduce((sum, r) => sum + r[key], 0);
  const rate = (mode: Mode, kind: 'ingest' | 'dispatch') =>
    total(mode, `${kind}Tasks`) / total(mode, `${kind}Seconds`);
  const ingestRatio = rate('on', 'ingest') / rate('off', 'ingest');
  const dispatchRatio = rate('on', 'dispatch') / rate('off', 'dispatch');
  // Pairs of neighbouring rounds (on, off) and (off, on): each on round against its off partner.
  const paired = (kind: 'ingest' | 'dispatch') => {
    const ratios: number[] = [];
    for (let i = 0; i + 1 < rounds.length; i += 2) {
      const [a, b] = [rounds[i], rounds[i + 1]];
      const on = a.mode === 'on' ? a : b;
      const off = a.mode === 'on' ? b : a;
      ratios.push(
        on[`${kind}Tasks`] / on[`${kind}Seconds`] / (off[`${kind}Tasks`] / off[`${kind}Seconds`]),
      );
    }
    return ratios;
  };
  const ingestPairs = paired('ingest');
  const dispatchPairs = paired('dispatch');
  // CPU of each part per task, summed over a mode's rounds (milliseconds).
  const cpuPerTask = (mode: Mode, kind: 'ingest' | 'dispatch') => {
    const sum: Record<string, number> = {};
    for (const r of rounds.filter((x) => x.mode === mode)) {
      for (const [group, seconds] of Object.entries(r[`${kind}Cpu`])) {
        sum[group] = (sum[group] ?? 0) + seconds;
      }
    }
    const tasks = total(mode, `${kind}Tasks`);
    return Object.fromEntries(
      Object.entries(sum)
        .filter(([group]) => group !== 'machine capacity')
        .map(([group, seconds]) => [group, round((seconds * 1000) / tasks, 3)]),
    );
  };
  const cpu = {
    ingest: { on: cpuPerTask('on', 'ingest'), off: cpuPerTask('off', 'ingest') },
    dispatch: { on: cpuPerTask('on', 'dispatch'), off: cpuPerTask('off', 'dispatch') },
  };
  const onRounds = rounds.filter((r) => r.mode === 'on');
  const drained = onRounds.every((r) => r.drainMissing === 0);
  const splitLines = onRounds.reduce((sum, r) => sum + (r.drainExtra ?? 0), 0);
  const catchUp = summarize(onRounds.map((r) => (r.drainCatchUpSeconds ?? 0) * 1000));
  const rows: Row[] = [
    {
      metric: 'ingest, everything on / off',
      value: `${fmt(rate('on', 'ingest'))} / ${fmt(rate('off', 'ingest'))} tasks/s = ${fmt(ingestRatio, 3)}×`,
      target: '≥ 0.95×',
      met: ingestRatio >= 0.95,
    },
    {
      metric: 'ingest, paired rounds on/off: median (min–max)',
      value: `${fmt(summarize(ingestPairs, 3).p50, 3)}× (${fmt(Math.min(...ingestPairs), 3)}–${fmt(Math.max(...ingestPairs), 3)})`,
    },
    {
      metric: 'dispatch, everything on / off',
      value: `${fmt(rate('on', 'dispatch'), 2)} / ${fmt(rate('off', 'dispatch'), 2)} tasks/s = ${fmt(dispatchRatio, 3)}×`,
      target: '≥ 0.95×',
      met: dispatchRatio >= 0.95,
    },
    {
      metric: 'dispatch, paired rounds on/off: median (min–max)',
      value: `${fmt(summarize(dispatchPairs, 3).p50, 3)}× (${fmt(Math.min(...dispatchPairs), 3)}–${fmt(Math.max(...dispatchPairs), 3)})`,
    },
    {
      metric: 'ingest, API CPU per task on / off',
      value: `${fmt(cpu.ingest.on['kiln api'] ?? 0, 3)} / ${fmt(cpu.ingest.off['kiln api'] ?? 0, 3)} ms`,
    },
    {
      metric: 'dispatch, worker + scheduler CPU per task on / off',
      value: `${fmt((cpu.dispatch.on['kiln worker'] ?? 0) + (cpu.dispatch.on['kiln scheduler'] ?? 0), 2)} / ${fmt((cpu.dispatch.off['kiln worker'] ?? 0) + (cpu.dispatch.off['kiln scheduler'] ?? 0), 2)} ms`,
    },
    {
      metric:
        'on: each task’s text reached the drain whole, once (lines split in two); after the tasks, p50 / max; scrapes',
      value: `${drained ? 'yes' : 'NO'} (${splitLines}); ${fmt(catchUp.p50)} / ${fmt(catchUp.max)} ms; ${rounds.reduce((sum, r) => sum + r.scrapes, 0)} scrapes`,
    },
  ];
  return {
    ...resultHeader('observability', ctx, startedAt),
    params: {
      ...params,
      order: 'rounds in ABBA order (on, off, off, on, …), each a fresh Kiln: ingest then dispatch',
      dispatchPayload: DISPATCH_PAYLOAD,
    },
    rows,
    details: {
      ingestRatio: round(ingestRatio, 3),
      dispatchRatio: round(dispatchRatio, 3),
      ingestPairs: ingestPairs.map((r) => round(r, 3)),
      dispatchPairs: dispatchPairs.map((r) => round(r, 3)),
      cpuMsPerTask: cpu,
      rounds: rounds.map((r) => ({
        ...r,
        ingestSeconds: round(r.ingestSeconds, 3),
        dispatchSeconds: round(r.dispatchSeconds, 2),
      })),
    },
  };
}

async function runRound(
  ctx: BenchContext,
  db: Pool,
  receiver: SyslogReceiver,
  mode: Mode,
  index: number,
  params: {
    ingestTasks: number;
    ingestWarmup: number;
    clients: number;
    dispatchTasks: number;
    dispatchWarmup: number;
    concurrency: number;
    scrapeSeconds: number;
  },
): Promise<Round> {
  const on = mode === 'on';
  const label = `observability-${index + 1}-${mode}`;
  const kiln = await startKiln(ctx.infra, label, {
    profile: ctx.profile,
    workerConcurrency: params.concurrency,
    workerMetrics: on,
    env: {
      KILN_METRICS: on ? '1' : '0',
      KILN_LOG_LEVEL: on ? 'log' : 'warn',
      WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
    },
  });
  const schedulerPort = on ? await freePortFrom(Number(new URL(kiln.url).port) + 10, 200) : 0;
  const scheduler = startApp(
    'scheduler',
    { ...kiln.env, KILN_SCHEDULER_HEALTH_PORT: String(schedulerPort) },
    `observability-${index + 1}-${mode}-scheduler`,
  );
  kiln.pids[scheduler.child.pid!] = 'kiln scheduler';
  const project = await newProject(kiln, `bench-observability-${index + 1}`);
  const admin = new Api(kiln.url, kiln.adminToken);
  await admin.ok('PUT', `/2/projects/${project.id}/clusters/${PARKED}`);
  if (on) {
    await project.api.ok('POST', `/2/projects/${project.id}/log_drains`, {
      url: `syslog+tcp://127.0.0.1:${receiver.port}`,
    });
  }
  // The scheduler leads before anything is measured (its first lease pass).
  await sleep(3000);

  const scrapeUrls = on
    ? [`${kiln.url}/metrics`, kiln.workerMetricsUrl!, `http://127.0.0.1:${schedulerPort}/metrics`]
    : [];
  let scrapes = 0;
  const failedScrapes: string[] = [];
  const scraper = on
    ? setInterval(() => {
        for (const url of scrapeUrls) {
          request('GET', url, { token: kiln.adminToken }).then(
            (answer) =>
              answer.status === 200 ? scrapes++ : failedScrapes.push(`${url}: ${answer.status}`),
            (error: Error) => failedScrapes.push(`${url}: ${error.message}`),
          );
        }
      }, params.scrapeSeconds * 1000)
    : undefined;

  const ingestBody = tasksFor(100, PARKED);
  const ingest = (size: number) =>
    project.api
      .ok(
        'POST',
        `/2/projects/${project.id}/tasks`,
        undefined,
        size === 100 ? ingestBody : tasksFor(size, PARKED),
      )
      .then(() => undefined);
  const linesBefore = receiver.lines;
  try {
    await runBatches(params.ingestWarmup, 100, params.clients, ingest);
    const warm = await dispatchTasks(project, db, params.dispatchWarmup, () =>
      ctx.deadline.check(),
    );
    let before = sampleCpu(kiln.pids);
    const ingestStartUs = monotonicUs();
    const ingestRun = await runBatches(params.ingestTasks, 100, params.clients, ingest, () =>
      ctx.deadline.check(),
    );
    const ingestCpu = cpuBetween(before, sampleCpu(kiln.pids));
    const ingestWindow = { startUs: ingestStartUs, endUs: monotonicUs() };
    // Dispatch runs on a tasks table like the dispatch benchmark's, not beside the 50,000 tasks
    // just parked: the plans a process cached while the table was small (its first statements,
    // in the warm-up) scan it whole until Postgres analyses it again (docs/benchmarks.md).
    await db.query('DELETE FROM tasks WHERE project_id = $1 AND cluster = $2', [
      project.id,
      PARKED,
    ]);
    await db.query('VACUUM ANALYZE tasks');
    before = sampleCpu(kiln.pids);
    const dispatchRun = await dispatchTasks(project, db, params.dispatchTasks, () =>
      ctx.deadline.check(),
    );
    const dispatchCpu = cpuBetween(before, sampleCpu(kiln.pids));
    let drainMissing: number | undefined;
    let drainExtra: number | undefined;
    let drainCatchUpSeconds: number | undefined;
    if (on) {
      // 21 lines a task (the payload, then "line 1" … "line 20"), warm-up tasks included. The
      // drain ships them as they are stored, every 0.5 s, never holding a task up: what is left
      // when the tasks have ended (the CPU sample above) comes after, and its time is reported.
      const ids = [...warm.ids, ...dispatchRun.ids];
      const whole = (id: string) => receiver.text.get(id) === EXPECTED_TEXT;
      const ended = performance.now();
      const until = Date.now() + 30_000;
      while (!ids.every(whole) && Date.now() < until) await sleep(50);
      drainCatchUpSeconds = (performance.now() - ended) / 1000;
      await sleep(1000); // anything more (a line twice) would have come by now
      drainMissing = ids.filter((id) => !whole(id)).length;
      drainExtra = receiver.lines - linesBefore - 21 * ids.length;
    }
    if (failedScrapes.length > 0) throw new Error(`scrapes failed: ${failedScrapes.join('; ')}`);
    let ingestProfile: ProfileSummary | undefined;
    if (ctx.profile) {
      await kiln.api.stop();
      ingestProfile = summarizeProfile(`${label}-api`, [ingestWindow]);
    }
    return {
      ingestProfile,
      mode,
      ingestTasks: params.ingestTasks,
      ingestSeconds: ingestRun.ms / 1000,
      dispatchTasks: params.dispatchTasks,
      dispatchSeconds: dispatchRun.ms / 1000,
      scrapes,
      drainMissing,
      drainExtra,
      drainCatchUpSeconds,
      ingestCpu,
      dispatchCpu,
    };
  } finally {
    clearInterval(scraper);
    await scheduler.stop();
    await kiln.worker?.stop();
    await kiln.api.stop();
    // Nothing of this round is left for the next one's scheduler to reconcile or ship.
    await db.query('DELETE FROM tasks WHERE project_id = $1', [project.id]);
    await db.query('DELETE FROM log_drains WHERE project_id = $1', [project.id]);
    await deleteKeys(ctx.infra.redisUrl, kiln.prefix);
  }
}

function tasksFor(count: number, cluster: string): string {
  return JSON.stringify({
    tasks: Array.from({ length: count }, () => ({ code_name: 'bench', payload: '{}', cluster })),
  });
}

/** Queues `count` tasks printing 21 lines each and waits until every one has ended. */
async function dispatchTasks(
  project: Project,
  db: Pool,
  count: number,
  check: () => void,
): Promise<{ ms: number; ids: string[] }> {
  const started = performance.now();
  const body = JSON.stringify({
    tasks: Array.from({ length: count }, () => ({ code_name: 'bench', payload: DISPATCH_PAYLOAD })),
  });
  const answer = await project.api.ok('POST', `/2/projects/${project.id}/tasks`, undefined, body);
  const ids = (answer.body.tasks as { id: string }[]).map((task) => task.id);
  for (;;) {
    check();
    const { rows } = await db.query<{ done: number; complete: number }>(
      `SELECT count(*)::int AS done, count(*) FILTER (WHERE status = 'complete')::int AS complete
         FROM tasks WHERE id = ANY($1) AND status = ANY($2)`,
      [ids, FINAL_STATUSES],
    );
    if (rows[0].done === count) {
      if (rows[0].complete !== count) {
        throw new Error(
          `${count - rows[0].complete} of ${count} dispatched tasks did not complete`,
        );
      }
      return { ms: performance.now() - started, ids };
    }
    await sleep(50);
  }
}

interface SyslogReceiver {
  port: number;
  /** Messages received so far. */
  readonly lines: number;
  /**
   * Each task's messages (its PROCID) joined without separators: the same text however the
   * worker's flushes split a line (a drain gets a line printed across two flushes as two).
   */
  readonly text: Map<string, string>;
  close(): Promise<void>;
}

/**
 * A syslog-over-TCP receiver on 127.0.0.1 (RFC 6587 octet counting) that counts Kiln's RFC 5424
 * messages and keeps each task's text.
 */
async function syslogReceiver(): Promise<SyslogReceiver> {
  let lines = 0;
  const text = new Map<string, string>();
  const server: Server = createServer((socket) => {
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const space = pending.indexOf(0x20);
        if (space < 0) break;
        const length = Number(pending.subarray(0, space).toString('ascii'));
        if (!Number.isInteger(length) || length <= 0) {
          socket.destroy(new Error('not octet-counted syslog'));
          return;
        }
        if (pending.length < space + 1 + length) break;
        const message = pending.subarray(space + 1, space + 1 + length).toString('utf8');
        pending = pending.subarray(space + 1 + length);
        lines++;
        // <pri>1 time host app PROCID MSGID [SD] MSG: the SD's values here hold no "]".
        const taskId = message.split(' ', 5)[4];
        const body = message.slice(message.indexOf('] ') + 2);
        text.set(taskId, (text.get(taskId) ?? '') + body);
      }
    });
    socket.on('error', () => undefined);
  });
  const port = await freePortFrom(18700, 200);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    get lines() {
      return lines;
    },
    text,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
