/**
 * reads: how fast Kiln's API answers the reads clients poll, against a bare `node:http` + `pg`
 * server running the same query in the same run (bench/lib/bare-reads.ts): what the database and
 * the runtime allow. Routes (issue 21):
 * - `GET …/tasks/{id}` of a finished task, payload `{}` (IronWorker's clients wait for a task by
 *   polling it);
 * - `GET …/tasks?complete=1` (a page of 30; the bare server: the same filter and order);
 * - `GET …/tasks/{id}/log` of a finished task with a 64 KB log;
 * - `GET …/codes/{id}`.
 * Each is loaded for KILN_BENCH_READS_SECONDS (10) from KILN_BENCH_READS_CONNECTIONS (64)
 * keep-alive connections, Kiln and the bare server alternating, KILN_BENCH_READS_ROUNDS (2)
 * rounds, medians reported: requests/s (and the median of each round's Kiln / bare ratio), p50,
 * p99, and the server process's CPU per request.
 * Targets: `GET task` at least 0.6× the bare server's rate with p99 under 40 ms; the others at
 * least 0.5×.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { Pool } from 'pg';
import { setting } from './lib/env';
import { newProject, startKiln } from './lib/kiln';
import { TEST_IMAGE } from '../test/support/images';
import { cpuBetween, defer, sampleCpu } from './lib/procs';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';
import { summarize } from './lib/stats';
import { freePort } from '../test/support/processes';

const FINAL = ['complete', 'error', 'cancelled', 'killed', 'timeout'];
/** The log's size: 64 KB, printed by a one-line script (`yes x | head -c`). */
const LOG_BYTES = 64_000;

interface Load {
  rate: number;
  p50: number;
  p99: number;
  /** CPU milliseconds of the server process per request. */
  cpuMs: number;
  errors: number;
}

interface Route {
  name: string;
  kiln: string;
  bare: string;
  /** At least this share of the bare server's rate. */
  target: number;
  /** And, for `GET task`, this p99. */
  p99Ms?: number;
}

export async function reads(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    seconds: setting('KILN_BENCH_READS_SECONDS', 10),
    connections: setting('KILN_BENCH_READS_CONNECTIONS', 64),
    rounds: setting('KILN_BENCH_READS_ROUNDS', 2),
  };
  const kiln = await startKiln(ctx.infra, 'reads', {
    profile: ctx.profile,
    workerConcurrency: 1,
    // One token polls far above the default 1,000 requests/s: the limit is still checked, as
    // for every request, but not reached.
    env: { KILN_RATE_LIMIT_PER_SECOND: '1000000', KILN_RATE_LIMIT_BURST: '10000000' },
  });
  const project = await newProject(kiln, 'bench-reads');
  const db = new Pool({ connectionString: ctx.infra.databaseUrl, max: 2 });
  defer('close the Postgres pool', () => db.end());

  // One finished task with a 64 KB log (a one-line script's output), and 99 more finished tasks
  // with the payload `{}` for the list and `GET task`.
  await project.api.ok('POST', `/2/projects/${project.id}/codes`, {
    name: 'print',
    image: TEST_IMAGE,
    command: 'sh /mnt/kiln/payload.json',
  });
  const created = await project.api.ok('POST', `/2/projects/${project.id}/tasks`, {
    tasks: [{ code_name: 'print', payload: `yes x | head -c ${LOG_BYTES}` }],
  });
  const taskId = created.body.tasks[0].id as string;
  for (;;) {
    const task = await project.api.ok('GET', `/2/projects/${project.id}/tasks/${taskId}`);
    if (FINAL.includes(task.body.status)) {
      if (task.body.status !== 'complete') throw new Error(`the task ended ${task.body.status}`);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await db.query(
    `INSERT INTO tasks (id, project_id, code_id, code_revision_id, code_name, code_rev, status,
                        priority, payload, timeout, cluster, run_at, created_at, updated_at,
                        start_time, end_time, duration_ms, msg)
     SELECT lpad(to_hex(g), 8, '0') || substr(t.id, 9), t.project_id, t.code_id,
            t.code_revision_id, t.code_name, t.code_rev, 'complete', 0, '{}', 60, 'default',
            t.run_at, t.created_at - g * interval '1 second', t.updated_at,
            t.start_time, t.end_time, t.duration_ms, t.msg
       FROM tasks t, generate_series(1, 99) g WHERE t.id = $1`,
    [taskId],
  );
  const smallTaskId = `${(1).toString(16).padStart(8, '0')}${taskId.slice(8)}`;
  const codeId = (
    await db.query<{ id: string }>(`SELECT id FROM codes WHERE project_id = $1`, [project.id])
  ).rows[0].id;
  const logBytes = (await project.api.ok('GET', `/2/projects/${project.id}/tasks/${taskId}/log`))
    .text.length;

  const barePort = await freePort();
  const bare = spawn(process.execPath, [join(__dirname, 'lib', 'bare-reads.js')], {
    env: { ...process.env, DATABASE_URL: ctx.infra.databaseUrl, PORT: String(barePort) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  defer('stop the bare server', () => void bare.kill());
  await listening(bare);

  const base = `/2/projects/${project.id}`;
  const routes: Route[] = [
    {
      name: 'GET task',
      kiln: `${base}/tasks/${smallTaskId}`,
      bare: `/task/${smallTaskId}`,
      target: 0.6,
      p99Ms: 40,
    },
    {
      name: 'GET tasks?complete=1 (30)',
      kiln: `${base}/tasks?complete=1&per_page=30`,
      bare: `/tasks/${project.id}?status=complete`,
      target: 0.5,
    },
    {
      name: 'GET log (64 KB)',
      kiln: `${base}/tasks/${taskId}/log`,
      bare: `/log/${taskId}`,
      target: 0.5,
    },
    { name: 'GET code', kiln: `${base}/codes/${codeId}`, bare: `/code/${codeId}`, target: 0.5 },
  ];
  // KILN_BENCH_READS_ONLY=task: only the routes whose name holds it (e.g. for a profile).
  const only = process.env.KILN_BENCH_READS_ONLY;
  const selected = only ? routes.filter((route) => route.name.includes(only)) : routes;
  const servers = {
    kiln: { url: kiln.url, pid: kiln.api.child.pid!, token: project.api.token },
    bare: { url: `http://127.0.0.1:${barePort}`, pid: bare.pid!, token: undefined },
  };

  const measured = new Map<string, { kiln: Load[]; bare: Load[] }>();
  for (let round = 1; round <= params.rounds; round++) {
    for (const route of selected) {
      const entry = measured.get(route.name) ?? { kiln: [], bare: [] };
      measured.set(route.name, entry);
      // Alternate which goes first, so that neither always follows the other.
      const order = round % 2 === 1 ? (['kiln', 'bare'] as const) : (['bare', 'kiln'] as const);
      for (const which of order) {
        ctx.deadline.check();
        const server = servers[which];
        const load = await loadRoute(
          `${server.url}${which === 'kiln' ? route.kiln : route.bare}`,
          server.token,
          server.pid,
          params,
        );
        entry[which].push(load);
        console.log(
          `[reads] round ${round}, ${route.name}, ${which}: ${fmt(load.rate)} req/s, p50 ${fmt(load.p50, 1)} ms, ` +
            `p99 ${fmt(load.p99, 1)} ms, ${fmt(load.cpuMs, 3)} CPU ms/req${load.errors ? `, ${load.errors} errors` : ''}`,
        );
      }
    }
  }

  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const middle = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  };
  const rows: Row[] = [];
  const details: Record<string, unknown> = {};
  for (const route of selected) {
    const { kiln: k, bare: b } = measured.get(route.name)!;
    const of = (loads: Load[], pick: (load: Load) => number) => median(loads.map(pick));
    // Each round's Kiln against the same round's bare server: the machine's state moves less
    // within a round than across rounds.
    const ratio = median(k.map((load, i) => load.rate / b[i].rate));
    const kp99 = of(k, (l) => l.p99);
    const errors = [...k, ...b].reduce((sum, load) => sum + load.errors, 0);
    rows.push({
      metric: `${route.name}: Kiln / bare req/s`,
      value: `${fmt(of(k, (l) => l.rate))} / ${fmt(of(b, (l) => l.rate))} (${fmt(ratio, 2)}×, the median of the rounds' ratios)`,
      target: `≥ ${route.target}×`,
      met: ratio >= route.target && errors === 0,
    });
    rows.push({
      metric: `${route.name}: p50 / p99, Kiln; bare`,
      value: `${fmt(
        of(k, (l) => l.p50),
        1,
      )} / ${fmt(kp99, 1)} ms; ${fmt(
        of(b, (l) => l.p50),
        1,
      )} / ${fmt(
        of(b, (l) => l.p99),
        1,
      )} ms`,
      ...(route.p99Ms ? { target: `p99 < ${route.p99Ms} ms`, met: kp99 < route.p99Ms } : {}),
    });
    rows.push({
      metric: `${route.name}: server CPU ms per request, Kiln / bare`,
      value: `${fmt(
        of(k, (l) => l.cpuMs),
        3,
      )} / ${fmt(
        of(b, (l) => l.cpuMs),
        3,
      )}`,
    });
    details[route.name] = { kiln: k, bare: b, ratio };
  }
  rows.push({ metric: 'the log read', value: `${fmt(logBytes)} bytes` });
  return {
    ...resultHeader('reads', ctx, startedAt),
    params,
    rows,
    details,
  };
}

/** Waits for the bare server's `listening`. */
function listening(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the bare server did not start')), 10_000);
    child.stdout!.on('data', (data: Buffer) => {
      if (data.toString().includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`the bare server exited with ${code}`)));
  });
}

/**
 * `connections` loops on keep-alive connections of their own, each sending the next request when
 * the last answer is whole, for `seconds`; the answers are read, not parsed.
 */
async function loadRoute(
  url: string,
  token: string | undefined,
  pid: number,
  params: { seconds: number; connections: number },
): Promise<Load> {
  const agent = new Agent({ keepAlive: true, maxSockets: params.connections });
  const headers = token ? { authorization: `OAuth ${token}` } : {};
  const once = () =>
    new Promise<number>((resolve, reject) => {
      const req = httpRequest(url, { agent, headers }, (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  // Warm the connections and the caches first.
  await Promise.all(Array.from({ length: params.connections }, () => once()));
  const ms: number[] = [];
  let errors = 0;
  const before = sampleCpu({ [pid]: 'server' });
  const started = performance.now();
  const until = started + params.seconds * 1000;
  await Promise.all(
    Array.from({ length: params.connections }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        const status = await once().catch(() => 0);
        ms.push(performance.now() - t0);
        if (status !== 200) errors++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const cpu = cpuBetween(before, sampleCpu({ [pid]: 'server' }));
  agent.destroy();
  const summary = summarize(ms, 2);
  return {
    rate: ms.length / elapsed,
    p50: summary.p50,
    p99: summary.p99,
    cpuMs: ((cpu.server ?? 0) * 1000) / ms.length,
    errors,
  };
}
