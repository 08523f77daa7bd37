/**
 * schedules: (1) 10,000 schedules due at the same instant (created through the API, 100 a request,
 * `start_at` = a whole minute ahead, `run_times: 1`), ONE scheduler running: time from the instant
 * until all 10,000 tasks exist in Postgres (target ≤ 10 s) and until all their Bull jobs wait in
 * Redis. (2) Leader handover: two scheduler replicas with the default lease TTL; `kill -9` the
 * holder of `leader_leases`, time until the other replica holds it at term+1 (target ≤ TTL),
 * three times at different points of the holder's renewal cycle (the first right after a renewal:
 * the worst case), restarting the killed replica each time. No worker runs.
 */
import { Pool } from 'pg';
import { setting } from './lib/env';
import { CODE_NAME, Kiln, defaultQueue, newProject, startKiln, waitingCount } from './lib/kiln';
import { sleep } from '../test/support/processes';
import { App, defer, round, startApp } from './lib/procs';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';
import { runBatches } from './lib/stats';

const BATCH = 100;

export async function schedules(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    schedules: setting('KILN_BENCH_SCHEDULES_COUNT', 10_000),
    clients: setting('KILN_BENCH_SCHEDULES_CLIENTS', 4),
    /** The instant is the next whole minute at least this many seconds after creation starts. */
    leadSeconds: setting('KILN_BENCH_SCHEDULES_LEAD', 45),
    handovers: Math.max(1, setting('KILN_BENCH_SCHEDULES_HANDOVERS', 3)),
    leaseSeconds: setting('KILN_BENCH_SCHEDULES_LEASE', 10),
    batch: BATCH,
  };
  const kiln = await startKiln(ctx.infra, 'schedules', { profile: ctx.profile });
  const project = await newProject(kiln, 'bench-schedules');
  const db = new Pool({ connectionString: ctx.infra.databaseUrl, max: 2 });
  defer('close the Postgres pool', () => db.end());

  let generation = 0;
  const startScheduler = (id: string): App => {
    generation++;
    return startApp(
      'scheduler',
      {
        ...kiln.env,
        KILN_SCHEDULER_ID: id,
        KILN_LEADER_LEASE_SECONDS: String(params.leaseSeconds),
      },
      `schedules-scheduler-${id}-${generation}`,
      ctx.profile,
    );
  };

  // ------------------------------------------------------------ 1. a minute of 10,000 ----
  const firing = await fireMany(ctx, kiln, project, db, params, startScheduler);

  // ------------------------------------------------------------ 2. leader handover ----
  const handover = await handovers(ctx, db, params, startScheduler);

  const maxHandover = Math.max(...handover.runs.map((run) => run.seconds));
  const rows: Row[] = [
    {
      metric: `${fmt(params.schedules)} schedules created via API`,
      value: `${fmt(firing.createSeconds, 1)} s (${fmt(firing.createPerSecond)}/s)`,
    },
    {
      metric: `instant → all ${fmt(params.schedules)} tasks in Postgres`,
      value:
        firing.allTasksSeconds === null ? 'NOT REACHED' : `${fmt(firing.allTasksSeconds, 2)} s`,
      target: '≤ 10 s',
      met: firing.allTasksSeconds !== null && firing.allTasksSeconds <= 10,
    },
    {
      metric: 'instant → first task in Postgres',
      value: firing.firstTaskSeconds === null ? '-' : `${fmt(firing.firstTaskSeconds, 2)} s`,
    },
    {
      metric: 'instant → last task created_at (DB clock)',
      value:
        firing.dbLastCreatedSeconds === null ? '-' : `${fmt(firing.dbLastCreatedSeconds, 2)} s`,
    },
    {
      metric: `instant → all ${fmt(params.schedules)} Bull jobs waiting`,
      value: firing.allJobsSeconds === null ? 'NOT REACHED' : `${fmt(firing.allJobsSeconds, 2)} s`,
    },
  ];
  handover.runs.forEach((run, i) =>
    rows.push({
      metric: `handover ${i + 1} (kill -9 ${run.killed}, term ${run.fromTerm}→${run.toTerm})`,
      value: `${fmt(run.seconds, 2)} s (lease had ${fmt(run.leaseLeftSeconds, 2)} s left)`,
    }),
  );
  rows.push({
    metric: `handover max vs TTL ${params.leaseSeconds} s`,
    value: `${fmt(maxHandover, 2)} s`,
    target: `≤ ${params.leaseSeconds} s`,
    met: maxHandover <= params.leaseSeconds,
  });

  return {
    ...resultHeader('schedules', ctx, startedAt),
    params: {
      ...params,
      creation: 'through the API (POST …/schedules, 100 a request, run_times 1)',
    },
    rows,
    details: { firing, handover: { ...handover, maxSeconds: round(maxHandover, 3) } },
  };
}

interface FireResult {
  instant: string;
  createSeconds: number;
  createPerSecond: number;
  secondsBetweenCreationAndInstant: number;
  firstTaskSeconds: number | null;
  allTasksSeconds: number | null;
  allJobsSeconds: number | null;
  dbFirstCreatedSeconds: number | null;
  dbLastCreatedSeconds: number | null;
  tasksInPostgres: number;
  distinctInstants: number;
  jobsWaitingInRedis: number;
  /** [seconds after the instant, tasks in Postgres, jobs in Redis] at each change. */
  progress: [number, number, number][];
}

async function fireMany(
  ctx: BenchContext,
  kiln: Kiln,
  project: { id: string; api: import('./lib/http').Api },
  db: Pool,
  params: { schedules: number; clients: number; leadSeconds: number },
  startScheduler: (id: string) => App,
): Promise<FireResult> {
  const instantMs = Math.ceil((Date.now() + params.leadSeconds * 1000) / 60_000) * 60_000;
  const instant = new Date(instantMs);
  console.log(`[schedules] creating ${params.schedules} schedules due at ${instant.toISOString()}`);
  const body = JSON.stringify({
    schedules: Array.from({ length: BATCH }, () => ({
      code_name: CODE_NAME,
      payload: '{}',
      start_at: instant.toISOString(),
      run_every: 3600,
      run_times: 1,
    })),
  });
  const created = await runBatches(
    params.schedules,
    BATCH,
    params.clients,
    async (size) => {
      const batch =
        size === BATCH
          ? body
          : JSON.stringify({ schedules: JSON.parse(body).schedules.slice(0, size) });
      const answer = await project.api.ok(
        'POST',
        `/2/projects/${project.id}/schedules`,
        undefined,
        batch,
      );
      if ((answer.body.schedules as unknown[]).length !== size) {
        throw new Error(`asked for ${size} schedules, got ${answer.body.schedules.length}`);
      }
    },
    () => ctx.deadline.check(),
  );
  const stored = Number(
    (await db.query<{ n: string }>(`SELECT count(*) AS n FROM schedules`)).rows[0].n,
  );
  if (stored !== params.schedules) {
    throw new Error(`${stored} schedules stored, not ${params.schedules}`);
  }
  console.log(
    `[schedules] created in ${fmt(created.ms / 1000, 1)} s; ${fmt((instantMs - Date.now()) / 1000, 1)} s before the instant`,
  );

  const scheduler = startScheduler('solo');
  await scheduler.waitFor(/leader, term \d+/, 60_000);
  const lead = (instantMs - Date.now()) / 1000;
  if (lead < 1) throw new Error(`the scheduler was not leading before the instant (${lead} s)`);
  console.log(`[schedules] one scheduler leading; ${fmt(lead, 1)} s until the instant`);
  while (Date.now() < instantMs - 500) await sleep(100);

  const count = async (): Promise<number> =>
    Number(
      (
        await db.query<{ n: string }>(
          `SELECT count(*) AS n FROM tasks WHERE schedule_id IS NOT NULL`,
        )
      ).rows[0].n,
    );
  const jobs = (): Promise<number> =>
    waitingCount(ctx.infra.redisUrl, kiln.prefix, defaultQueue(project.id));
  let firstTask: number | null = null;
  let allTasks: number | null = null;
  let allJobs: number | null = null;
  const progress: [number, number, number][] = [];
  const pollUntil = instantMs + 60_000;
  while (Date.now() < pollUntil && (allTasks === null || allJobs === null)) {
    ctx.deadline.check();
    const [tasks, waiting] = await Promise.all([count(), jobs()]);
    const at = (Date.now() - instantMs) / 1000;
    const last = progress[progress.length - 1];
    if (!last || last[1] !== tasks || last[2] !== waiting) {
      progress.push([round(at, 3), tasks, waiting]);
    }
    if (tasks > 0 && firstTask === null) firstTask = at;
    if (tasks >= params.schedules && allTasks === null) allTasks = at;
    if (waiting >= params.schedules && allJobs === null) allJobs = at;
    await sleep(50);
  }
  const summary = (
    await db.query<{ n: string; instants: string; first: string | null; last: string | null }>(
      `SELECT count(*) AS n, count(DISTINCT scheduled_for) AS instants,
              extract(epoch FROM min(created_at) - $1::timestamptz) AS first,
              extract(epoch FROM max(created_at) - $1::timestamptz) AS last
         FROM tasks WHERE schedule_id IS NOT NULL`,
      [instant],
    )
  ).rows[0];
  await scheduler.stop();
  const result: FireResult = {
    instant: instant.toISOString(),
    createSeconds: round(created.ms / 1000, 2),
    createPerSecond: round(params.schedules / (created.ms / 1000)),
    secondsBetweenCreationAndInstant: round(lead, 1),
    firstTaskSeconds: firstTask === null ? null : round(firstTask, 3),
    allTasksSeconds: allTasks === null ? null : round(allTasks, 3),
    allJobsSeconds: allJobs === null ? null : round(allJobs, 3),
    dbFirstCreatedSeconds: summary.first === null ? null : round(Number(summary.first), 3),
    dbLastCreatedSeconds: summary.last === null ? null : round(Number(summary.last), 3),
    tasksInPostgres: Number(summary.n),
    distinctInstants: Number(summary.instants),
    jobsWaitingInRedis: await jobs(),
    progress,
  };
  console.log(
    `[schedules] all tasks after ${result.allTasksSeconds} s, all jobs after ${result.allJobsSeconds} s`,
  );
  return result;
}

interface Handover {
  killed: string;
  successor: string;
  fromTerm: number;
  toTerm: number;
  /** From the kill until the other replica holds the lease at term+1 (polled every 25 ms). */
  seconds: number;
  /** How long the killed holder's lease still had to run at the kill (DB clock). */
  leaseLeftSeconds: number;
  /** When in the holder's renewal cycle it was killed: seconds after a renewal was seen. */
  killedAfterRenewalSeconds: number;
}

async function handovers(
  ctx: BenchContext,
  db: Pool,
  params: { handovers: number; leaseSeconds: number },
  startScheduler: (id: string) => App,
): Promise<{ ttlSeconds: number; runs: Handover[] }> {
  const lease = async () =>
    (
      await db.query<{ holder: string; term: string; left: string; expires: string }>(
        `SELECT holder, term, extract(epoch FROM expires_at - now()) AS left,
                extract(epoch FROM expires_at) AS expires
           FROM leader_leases WHERE name = 'scheduler'`,
      )
    ).rows[0];
  const replicas: Record<string, App> = {};
  const start = async (id: string): Promise<void> => {
    const app = startScheduler(id);
    replicas[id] = app;
    await app.waitFor(/dependencies initialized/, 60_000);
  };
  console.log('[schedules] handover: starting replicas a and b');
  await start('a');
  await start('b');
  const runs: Handover[] = [];
  for (let i = 0; i < params.handovers; i++) {
    ctx.deadline.check();
    // Settle: both replicas up (the follower tries every 250 ms), a holder that is one of them.
    await sleep(2000);
    let current = await lease();
    const settle = Date.now() + 30_000;
    while (
      (!current || !(current.holder in replicas) || Number(current.left) <= 0) &&
      Date.now() < settle
    ) {
      await sleep(100);
      current = await lease();
    }
    if (!current || !(current.holder in replicas)) {
      throw new Error(`no replica holds the lease: ${JSON.stringify(current)}`);
    }
    const killed = current.holder;
    const successor = killed === 'a' ? 'b' : 'a';
    const fromTerm = Number(current.term);
    // The kill's phase within the holder's renewal cycle (it renews every TTL/3) decides the
    // wait: run i kills i/n of a cycle after a renewal, so run 1 (right after one, a full TTL
    // left) is the worst case and the others spread over the cycle.
    const renewed = Number(current.expires);
    while (Date.now() < settle + 30_000) {
      const seen = await lease();
      if (seen.holder !== killed) {
        throw new Error(`the lease moved by itself: ${JSON.stringify(seen)}`);
      }
      if (Number(seen.expires) > renewed) break;
      await sleep(10);
    }
    await sleep(((params.leaseSeconds * 1000) / 3) * (i / params.handovers));
    // Read the lease and kill at once: what is left of it is the wait to expect.
    const before = await lease();
    replicas[killed].child.kill('SIGKILL');
    const killedAt = performance.now();
    const leaseLeftSeconds = Number(before.left);
    let seconds: number | null = null;
    let now = before;
    while (performance.now() - killedAt < (params.leaseSeconds + 20) * 1000) {
      now = await lease();
      if (now.holder === successor && Number(now.term) === fromTerm + 1) {
        seconds = (performance.now() - killedAt) / 1000;
        break;
      }
      await sleep(25);
    }
    if (seconds === null) {
      throw new Error(`no handover within ${params.leaseSeconds + 20} s: ${JSON.stringify(now)}`);
    }
    runs.push({
      killed,
      successor,
      fromTerm,
      toTerm: Number(now.term),
      seconds: round(seconds, 3),
      leaseLeftSeconds: round(leaseLeftSeconds, 3),
      killedAfterRenewalSeconds: round(((params.leaseSeconds / 3) * i) / params.handovers, 2),
    });
    console.log(
      `[schedules] handover ${i + 1}: ${killed}→${successor} in ${fmt(seconds, 2)} s (lease had ${fmt(leaseLeftSeconds, 2)} s left)`,
    );
    await replicas[killed].stop();
    if (i < params.handovers - 1) await start(killed);
  }
  for (const app of Object.values(replicas)) await app.stop();
  return { ttlSeconds: params.leaseSeconds, runs };
}
