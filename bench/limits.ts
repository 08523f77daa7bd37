/**
 * limits: does a CPU limit keep a spinner from slowing a task beside it? One worker with 2 slots
 * on this 2-CPU machine. Project B's task counts to KILN_BENCH_LIMITS_COUNT (1,000,000) in a shell
 * loop, one thread; its duration is measured alone, then beside project A's spinner (four busy
 * threads, so that without a limit it would take every CPU) with the code's `cpus: 1`, then with
 * `cpus: 2` (no real limit on 2 CPUs: Kiln before issue 14 had none), KILN_BENCH_LIMITS_ROUNDS (3)
 * times each, interleaved. The spinner's CPU use is read from its container's cgroup (Docker's
 * stats: CPU time over wall time) while B's task runs. Target (issue 14): with `cpus: 1` the
 * spinner takes at most one CPU, and B's task runs at full speed (within 20 % of alone).
 */
import Docker from 'dockerode';
import { setting } from './lib/env';
import { Project, newProject, startKiln } from './lib/kiln';
import { sleep } from '../test/support/processes';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';
import { summarize } from './lib/stats';

const FINAL = ['complete', 'error', 'cancelled', 'killed', 'timeout'];
const SPIN = 'for i in 1 2 3 4; do (while :; do :; done) & done; sleep 600';

interface TaskView {
  status: string;
  duration: number;
}

interface Round {
  setting: string;
  bSeconds: number;
  spinnerCores?: number;
  spinnerThrottledPct?: number;
}

export async function limits(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    count: setting('KILN_BENCH_LIMITS_COUNT', 1_000_000),
    rounds: setting('KILN_BENCH_LIMITS_ROUNDS', 3),
    slots: 2,
    spinnerThreads: 4,
  };
  const kiln = await startKiln(ctx.infra, 'limits', {
    profile: ctx.profile,
    workerConcurrency: params.slots,
    env: { KILN_CONTAINER_CPUS: '1', KILN_CONTAINER_CPUS_MAX: '2' },
  });
  const docker = new Docker({ socketPath: ctx.infra.dockerSocket });
  const a = await newProject(kiln, 'bench-limits-a');
  const b = await newProject(kiln, 'bench-limits-b');
  const script = { image: 'kiln-test/busybox:latest', command: 'sh /mnt/kiln/payload.json' };
  for (const cpus of [1, 2]) {
    await a.api.ok('POST', `/2/projects/${a.id}/codes`, { name: `spin${cpus}`, cpus, ...script });
  }
  await b.api.ok('POST', `/2/projects/${b.id}/codes`, { name: 'count', ...script });
  const count = `i=0; while [ $i -lt ${params.count} ]; do i=$((i+1)); done; echo $i`;

  const rounds: Round[] = [];
  for (let round = 1; round <= params.rounds; round++) {
    for (const which of ['alone', 'cpus 1', 'cpus 2'] as const) {
      ctx.deadline.check();
      let spinner: string | undefined;
      let containerId: string | undefined;
      if (which !== 'alone') {
        spinner = await queue(a, `spin${which.slice(-1)}`, SPIN);
        await waitFor(a, spinner, (task) => task.status === 'running');
        containerId = await containerOf(docker, spinner);
        // Let its threads get going before B's task starts.
        await sleep(1000);
      }
      const before = containerId ? await cpuOf(docker, containerId) : undefined;
      const beforeAt = performance.now();
      const counted = await waitFor(b, await queue(b, 'count', count), (task) =>
        FINAL.includes(task.status),
      );
      if (counted.status !== 'complete') throw new Error(`B's task ended ${counted.status}`);
      const result: Round = { setting: which, bSeconds: counted.duration / 1000 };
      if (containerId && before) {
        const after = await cpuOf(docker, containerId);
        const wallNs = (performance.now() - beforeAt) * 1e6;
        result.spinnerCores = (after.usageNs - before.usageNs) / wallNs;
        const periods = after.periods - before.periods;
        result.spinnerThrottledPct =
          periods > 0 ? (100 * (after.throttled - before.throttled)) / periods : 0;
      }
      if (spinner) {
        await a.api.ok('POST', `/2/projects/${a.id}/tasks/${spinner}/cancel`);
        await waitFor(a, spinner, (task) => FINAL.includes(task.status));
        // Its container is removed after the outcome; let it go before the next round.
        await sleep(1000);
      }
      rounds.push(result);
      console.log(
        `[limits] round ${round}, ${which}: B ${fmt(result.bSeconds, 2)} s` +
          (result.spinnerCores === undefined
            ? ''
            : `, spinner ${fmt(result.spinnerCores, 2)} CPUs (throttled in ${fmt(result.spinnerThrottledPct ?? 0)} % of periods)`),
      );
    }
  }

  const of = (which: string) => rounds.filter((round) => round.setting === which);
  const median = (values: number[]) => summarize(values, 3).p50;
  const alone = median(of('alone').map((r) => r.bSeconds));
  const limited = median(of('cpus 1').map((r) => r.bSeconds));
  const unlimited = median(of('cpus 2').map((r) => r.bSeconds));
  const spinLimited = Math.max(...of('cpus 1').map((r) => r.spinnerCores ?? 0));
  const spinUnlimited = median(of('cpus 2').map((r) => r.spinnerCores ?? 0));
  const rows: Row[] = [
    { metric: `B's task alone (median of ${params.rounds})`, value: `${fmt(alone, 2)} s` },
    {
      metric: "B's task beside A's spinner, cpus 1 (median)",
      value: `${fmt(limited, 2)} s (${fmt(limited / alone, 2)}× alone)`,
      target: '≤ 1.20× alone',
      met: limited / alone <= 1.2,
    },
    {
      metric: "A's spinner, cpus 1: CPUs used while B ran (max)",
      value: fmt(spinLimited, 2),
      target: '≤ 1.05',
      met: spinLimited <= 1.05,
    },
    {
      metric: "B's task beside A's spinner, cpus 2 (no real limit here; median)",
      value: `${fmt(unlimited, 2)} s (${fmt(unlimited / alone, 2)}× alone)`,
    },
    { metric: "A's spinner, cpus 2: CPUs used while B ran (median)", value: fmt(spinUnlimited, 2) },
  ];
  return {
    ...resultHeader('limits', ctx, startedAt),
    params,
    rows,
    details: { rounds },
  };
}

async function queue(project: Project, code: string, payload: string): Promise<string> {
  const answer = await project.api.ok('POST', `/2/projects/${project.id}/tasks`, {
    tasks: [{ code_name: code, payload, timeout: 900 }],
  });
  return answer.body.tasks[0].id as string;
}

async function waitFor(
  project: Project,
  id: string,
  done: (task: TaskView) => boolean,
): Promise<TaskView> {
  const until = Date.now() + 300_000;
  for (;;) {
    const task = (await project.api.ok('GET', `/2/projects/${project.id}/tasks/${id}`))
      .body as TaskView;
    if (done(task)) return task;
    if (Date.now() > until) throw new Error(`task ${id} is still ${task.status}`);
    await sleep(100);
  }
}

async function containerOf(docker: Docker, taskId: string): Promise<string> {
  for (let tries = 0; tries < 100; tries++) {
    const [found] = await docker.listContainers({ filters: { label: [`kiln.task=${taskId}`] } });
    if (found) return found.Id;
    await sleep(100);
  }
  throw new Error(`no container for task ${taskId}`);
}

/** The container's CPU time and CFS throttling so far, from its cgroup (Docker's stats). */
async function cpuOf(
  docker: Docker,
  id: string,
): Promise<{ usageNs: number; periods: number; throttled: number }> {
  const stats = (await docker
    .getContainer(id)
    .stats({ stream: false, 'one-shot': true } as { stream: false })) as unknown as {
    cpu_stats: {
      cpu_usage: { total_usage: number };
      throttling_data?: { periods: number; throttled_periods: number };
    };
  };
  return {
    usageNs: stats.cpu_stats.cpu_usage.total_usage,
    periods: stats.cpu_stats.throttling_data?.periods ?? 0,
    throttled: stats.cpu_stats.throttling_data?.throttled_periods ?? 0,
  };
}
