/**
 * limits: does a CPU limit keep a spinner from taking the machine? One worker with 2 slots on
 * this 2-CPU machine. Project A's spinner runs four busy threads (so that without a limit it
 * would take every CPU), its code at `cpus: 1`, then at `cpus: 2` (no real limit on 2 CPUs:
 * Kiln before issue 14 set none). Measured each time, KILN_BENCH_LIMITS_ROUNDS (3) rounds,
 * interleaved with a round without the spinner:
 * - the spinner's CPU use on its own for 3 s, from its container's cgroup (Docker's stats: CPU
 *   time over wall time);
 * - project B's task on the other slot, counting to KILN_BENCH_LIMITS_COUNT (1,000,000) in a
 *   shell loop (one thread): its duration, against the same task without the spinner;
 * - one thread of work outside Docker, as Kiln's API, Postgres or dockerd are (a node process
 *   hashing 64 KiB KILN_BENCH_LIMITS_HASHES (40,000) times), against the same without the spinner.
 * Target (issue 14): with `cpus: 1` the spinner takes at most one CPU, and B's task runs at full
 * speed beside it (within 20 % of alone).
 */
import Docker from 'dockerode';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { setting } from './lib/env';
import { Project, newProject, startKiln } from './lib/kiln';
import { sleep } from '../test/support/processes';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';
import { summarize } from './lib/stats';

const run = promisify(execFile);
const FINAL = ['complete', 'error', 'cancelled', 'killed', 'timeout'];
const SPIN = 'for i in 1 2 3 4; do (while :; do :; done) & done; sleep 600';

interface TaskView {
  status: string;
  duration: number;
}

interface Round {
  setting: string;
  bSeconds: number;
  hostSeconds: number;
  /** The spinner's CPUs (CPU time / wall time) on its own, beside B's task, beside the host work. */
  spinnerAloneCores?: number;
  spinnerCores?: number;
  spinnerBesideHostCores?: number;
}

export async function limits(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    count: setting('KILN_BENCH_LIMITS_COUNT', 1_000_000),
    rounds: setting('KILN_BENCH_LIMITS_ROUNDS', 3),
    hashes: setting('KILN_BENCH_LIMITS_HASHES', 40_000),
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
        // Let its threads get going.
        await sleep(1000);
      }
      const usage = async <T>(work: () => Promise<T>): Promise<[T, number | undefined]> => {
        const before = containerId ? await cpuOf(docker, containerId) : undefined;
        const at = performance.now();
        const result = await work();
        if (!containerId || !before) return [result, undefined];
        const after = await cpuOf(docker, containerId);
        return [result, (after.usageNs - before.usageNs) / ((performance.now() - at) * 1e6)];
      };
      const result: Round = { setting: which, bSeconds: 0, hostSeconds: 0 };
      [, result.spinnerAloneCores] = await usage(() => sleep(3000));
      [result.bSeconds, result.spinnerCores] = await usage(async () => {
        const counted = await waitFor(b, await queue(b, 'count', count), (task) =>
          FINAL.includes(task.status),
        );
        if (counted.status !== 'complete') throw new Error(`B's task ended ${counted.status}`);
        return counted.duration / 1000;
      });
      [result.hostSeconds, result.spinnerBesideHostCores] = await usage(() =>
        hostWork(params.hashes),
      );
      if (spinner) {
        await a.api.ok('POST', `/2/projects/${a.id}/tasks/${spinner}/cancel`);
        await waitFor(a, spinner, (task) => FINAL.includes(task.status));
        // Its container is removed after the outcome; let it go before the next round.
        await sleep(1000);
      }
      rounds.push(result);
      const cpus = (value: number | undefined) => (value === undefined ? '-' : fmt(value, 2));
      console.log(
        `[limits] round ${round}, ${which}: B ${fmt(result.bSeconds, 2)} s, host work ${fmt(result.hostSeconds, 2)} s; ` +
          `spinner CPUs alone ${cpus(result.spinnerAloneCores)}, beside B ${cpus(result.spinnerCores)}, beside the host work ${cpus(result.spinnerBesideHostCores)}`,
      );
    }
  }

  const of = (which: string) => rounds.filter((round) => round.setting === which);
  const median = (values: number[]) => summarize(values, 3).p50;
  const medianOf = (which: string, pick: (round: Round) => number | undefined) =>
    median(of(which).map((round) => pick(round) ?? 0));
  const maxOf = (which: string, pick: (round: Round) => number | undefined) =>
    Math.max(...of(which).map((round) => pick(round) ?? 0));
  const alone = medianOf('alone', (r) => r.bSeconds);
  const limited = medianOf('cpus 1', (r) => r.bSeconds);
  const unlimited = medianOf('cpus 2', (r) => r.bSeconds);
  const hostAlone = medianOf('alone', (r) => r.hostSeconds);
  const hostLimited = medianOf('cpus 1', (r) => r.hostSeconds);
  const hostUnlimited = medianOf('cpus 2', (r) => r.hostSeconds);
  const spinLimited = maxOf('cpus 1', (r) => r.spinnerAloneCores);
  const times = (value: number, base: number) => `${fmt(value, 2)} s (${fmt(value / base, 2)}×)`;
  const rows: Row[] = [
    {
      metric: `A's spinner alone, cpus 1: CPUs used (max of ${params.rounds})`,
      value: fmt(spinLimited, 2),
      target: '≤ 1.05',
      met: spinLimited <= 1.05,
    },
    {
      metric: "A's spinner alone, cpus 2 (no real limit on 2 CPUs; median)",
      value: fmt(
        medianOf('cpus 2', (r) => r.spinnerAloneCores),
        2,
      ),
    },
    { metric: `B's task alone (median of ${params.rounds})`, value: `${fmt(alone, 2)} s` },
    {
      metric: "B's task beside A's spinner, cpus 1 (median)",
      value: times(limited, alone),
      target: '≤ 1.20× alone',
      met: limited / alone <= 1.2,
    },
    { metric: "B's task beside A's spinner, cpus 2 (median)", value: times(unlimited, alone) },
    {
      metric: "A's spinner's CPUs while B ran: cpus 1 / cpus 2 (median)",
      value: `${fmt(
        medianOf('cpus 1', (r) => r.spinnerCores),
        2,
      )} / ${fmt(
        medianOf('cpus 2', (r) => r.spinnerCores),
        2,
      )}`,
    },
    {
      metric: 'host work (one thread outside Docker) alone (median)',
      value: `${fmt(hostAlone, 2)} s`,
    },
    {
      metric: "host work beside A's spinner, cpus 1 (median)",
      value: times(hostLimited, hostAlone),
    },
    {
      metric: "host work beside A's spinner, cpus 2 (median)",
      value: times(hostUnlimited, hostAlone),
    },
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

/**
 * Seconds a process of its own outside Docker takes to hash 64 KiB `count` times: one thread of
 * work as the platform's own processes do it (timed inside it, so its start-up is left out).
 */
async function hostWork(count: number): Promise<number> {
  const script = [
    "const { createHash } = require('node:crypto');",
    'const block = Buffer.alloc(64 * 1024, 1);',
    'const started = performance.now();',
    `for (let i = 0; i < ${count}; i++) createHash('sha256').update(block).digest();`,
    'console.log((performance.now() - started) / 1000);',
  ].join('\n');
  const { stdout } = await run(process.execPath, ['-e', script]);
  return Number(stdout.trim());
}

/** The container's CPU time so far, nanoseconds, from its cgroup (Docker's stats). */
async function cpuOf(docker: Docker, id: string): Promise<{ usageNs: number }> {
  const stats = (await docker
    .getContainer(id)
    .stats({ stream: false, 'one-shot': true } as { stream: false })) as unknown as {
    cpu_stats: { cpu_usage: { total_usage: number } };
  };
  return { usageNs: stats.cpu_stats.cpu_usage.total_usage };
}
