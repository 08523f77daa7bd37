/**
 * fairness: project A has a backlog of KILN_BENCH_FAIRNESS_BACKLOG (5,000) tasks queued at
 * priority 2, each sleeping 1 s, and the one worker has 2 slots; project B then queues one task at
 * priority 0, KILN_BENCH_FAIRNESS_PROBES (5) times one after the other. Measured: from B's
 * `POST tasks` answer to its task's `start_time`, and how many of A's tasks started meanwhile.
 * Target (issue 13): B's task starts within 5 s. Before queues were per project, B's task waited
 * for A's whole backlog: 5,000 × 1 s / 2 slots ≈ 2,500 s.
 */
import { setting } from './lib/env';
import { Project, newProject, startKiln } from './lib/kiln';
import { sleep } from '../test/support/processes';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';
import { summarize } from './lib/stats';

const TARGET_SECONDS = 5;

export async function fairness(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    backlog: setting('KILN_BENCH_FAIRNESS_BACKLOG', 5000),
    probes: setting('KILN_BENCH_FAIRNESS_PROBES', 5),
    slots: 2,
    backlogTaskSeconds: 1,
  };
  const kiln = await startKiln(ctx.infra, 'fairness', {
    profile: ctx.profile,
    workerConcurrency: params.slots,
  });
  const a = await newProject(kiln, 'bench-fairness-a');
  const b = await newProject(kiln, 'bench-fairness-b');
  const sleeper = await a.api.ok('POST', `/2/projects/${a.id}/codes`, {
    name: 'sleeper',
    image: 'kiln-test/busybox:latest',
    command: `sleep ${params.backlogTaskSeconds}`,
  });
  const sleeperId = sleeper.body.id as string;

  console.log(`[fairness] A queues ${fmt(params.backlog)} tasks at priority 2`);
  for (let sent = 0; sent < params.backlog; sent += 100) {
    ctx.deadline.check();
    const count = Math.min(100, params.backlog - sent);
    await a.api.ok('POST', `/2/projects/${a.id}/tasks`, {
      tasks: Array.from({ length: count }, () => ({
        code_name: 'sleeper',
        payload: '{}',
        priority: 2,
      })),
    });
  }
  await waitForRunning(a, sleeperId, params.slots);

  const probes: { waitMs: number; aStartedMeanwhile: number }[] = [];
  for (let i = 0; i < params.probes; i++) {
    ctx.deadline.check();
    const aBefore = await startedCount(a, sleeperId);
    const created = await b.api.ok('POST', `/2/projects/${b.id}/tasks`, {
      tasks: [{ code_name: 'bench', payload: '{}', priority: 0 }],
    });
    const answeredAt = Date.now();
    const id = created.body.tasks[0].id as string;
    const startTime = await waitForStart(b, id, answeredAt + 120_000);
    const waitMs = startTime - answeredAt;
    const aStartedMeanwhile = (await startedCount(a, sleeperId)) - aBefore;
    probes.push({ waitMs, aStartedMeanwhile });
    console.log(
      `[fairness] probe ${i + 1}: B's task started ${fmt(waitMs / 1000, 2)} s after its POST; A started ${aStartedMeanwhile} meanwhile`,
    );
  }
  const aLeft = (await statsOf(a, sleeperId)).queued ?? 0;
  await a.api.ok('POST', `/2/projects/${a.id}/codes/${sleeperId}/cancel_all`);

  const waits = summarize(probes.map((probe) => probe.waitMs / 1000));
  const rows: Row[] = [
    {
      metric: `B's task, POST → start (max of ${params.probes})`,
      value: `${fmt(waits.max, 2)} s`,
      target: `≤ ${TARGET_SECONDS} s`,
      met: waits.max <= TARGET_SECONDS,
    },
    { metric: `B's task, POST → start (median)`, value: `${fmt(waits.p50, 2)} s` },
    {
      metric: `A's tasks still queued when the last probe ran`,
      value: fmt(aLeft),
    },
    {
      metric: 'the same wait with one queue for every project (computed)',
      value: `≈ ${fmt((aLeft * params.backlogTaskSeconds) / params.slots)} s`,
    },
  ];
  return {
    ...resultHeader('fairness', ctx, startedAt),
    params,
    rows,
    details: { probes, aLeft },
  };
}

/** The code's task counts by status (its stats, over the last 24 h). */
async function statsOf(project: Project, codeId: string): Promise<Record<string, number>> {
  return (await project.api.ok('GET', `/2/projects/${project.id}/codes/${codeId}/stats`))
    .body as Record<string, number>;
}

/** How many of the code's tasks have started: running or ended. */
async function startedCount(project: Project, codeId: string): Promise<number> {
  const stats = await statsOf(project, codeId);
  return ['running', 'complete', 'error', 'cancelled', 'killed', 'timeout']
    .map((status) => stats[status] ?? 0)
    .reduce((sum, n) => sum + n, 0);
}

async function waitForRunning(project: Project, codeId: string, count: number): Promise<void> {
  const until = Date.now() + 120_000;
  while (((await statsOf(project, codeId)).running ?? 0) < count) {
    if (Date.now() > until) throw new Error(`fewer than ${count} of A's tasks running after 120 s`);
    await sleep(100);
  }
}

/** The task's start_time in epoch ms, once it has one. */
async function waitForStart(project: Project, id: string, untilMs: number): Promise<number> {
  for (;;) {
    const task = (await project.api.ok('GET', `/2/projects/${project.id}/tasks/${id}`)).body;
    // An unset time is IronWorker's zero time, 0001-01-01T00:00:00Z.
    const started = Date.parse(task.start_time as string);
    if (started > 0) return started;
    if (Date.now() > untilMs) throw new Error(`B's task ${id} had not started after 120 s`);
    await sleep(50);
  }
}
