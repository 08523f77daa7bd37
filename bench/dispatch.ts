/**
 * dispatch: N trivial container tasks (payload `{}`, the test image prints it and exits) through
 * Kiln — POST …/tasks, one worker with KILN_WORKER_CONCURRENCY=C — against the same containers
 * run directly with dockerode, C at a time, with Kiln's hardening (create, attach, start, wait,
 * remove). Target: Kiln's wall time ≤ 1.15× the direct run. Also reports queued→running
 * (start_time − created_at of the task objects), saturated and unsaturated.
 */
import Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Pool } from 'pg';
import { setting } from './lib/env';
import { TEST_IMAGE } from '../test/support/images';
import { sleep } from '../test/support/processes';
import {
  BENCH_TASK_FILES_DIR,
  FINAL_STATUSES,
  Project,
  newProject,
  queueTasks,
  removeLabelled,
  startKiln,
} from './lib/kiln';
import { cpuBetween, defer, round, sampleCpu } from './lib/procs';
import { monotonicUs, summarizeProfile, Window } from './lib/profile';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';
import { runBatches, summarize } from './lib/stats';
// Kiln's own tar writer (no @kiln imports, so bench's plain tsc build can take it as it is).
import { tarArchive } from '../libs/docker/src/tar';

const MiB = 1024 * 1024;

/** How Kiln's worker (and direct+) deliver the contract files: KILN_BENCH_DISPATCH_DELIVERY. */
type Delivery = 'bind' | 'archive';

function deliverySetting(): Delivery {
  const value = process.env.KILN_BENCH_DISPATCH_DELIVERY ?? 'bind';
  if (value !== 'bind' && value !== 'archive') {
    throw new Error(`KILN_BENCH_DISPATCH_DELIVERY must be bind or archive (got "${value}")`);
  }
  return value;
}

export async function dispatch(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    tasks: setting('KILN_BENCH_DISPATCH_TASKS', 200),
    concurrency: Math.max(1, setting('KILN_BENCH_DISPATCH_CONCURRENCY', 4)),
    rounds: Math.max(1, setting('KILN_BENCH_DISPATCH_ROUNDS', 2)),
    warmup: setting('KILN_BENCH_DISPATCH_WARMUP', 8),
    probe: setting('KILN_BENCH_DISPATCH_PROBE', 30),
    delivery: deliverySetting(),
  };
  const docker = new Docker({ socketPath: ctx.infra.dockerSocket });
  try {
    await docker.getImage(TEST_IMAGE).inspect();
  } catch (error) {
    throw new Error(
      `${TEST_IMAGE} is not there (run scripts/infra.sh up): ${(error as Error).message}`,
    );
  }
  const run = randomBytes(4).toString('hex');
  // Registered before Kiln starts, so that they run after its processes stopped.
  defer('remove the direct run’s containers', () => removeLabelled(docker, 'kiln.bench', run));
  // Beside Kiln's worker's own files (a tmpfs), so that direct+ writes them as cheaply.
  const filesRoot = join(BENCH_TASK_FILES_DIR, 'direct', run);
  defer(`remove ${filesRoot}`, () => rm(filesRoot, { recursive: true, force: true }));
  const db = new Pool({ connectionString: ctx.infra.databaseUrl, max: 2 });
  defer('close the Postgres pool', () => db.end());

  const kiln = await startKiln(ctx.infra, 'dispatch', {
    workerConcurrency: params.concurrency,
    contractDelivery: params.delivery,
    profile: ctx.profile,
  });
  defer('remove the worker’s containers', () =>
    removeLabelled(docker, 'kiln.worker', kiln.workerId),
  );
  const project = await newProject(kiln, 'bench-dispatch');

  const direct = (mode: Direct, count: number, concurrency: number, steps?: Steps) =>
    directRun(
      docker,
      { run, delivery: params.delivery, filesRoot },
      mode,
      count,
      concurrency,
      () => ctx.deadline.check(),
      steps,
    );
  const viaKiln = (count: number) =>
    kilnRun(project, db, docker, kiln.workerId, count, () => ctx.deadline.check());

  console.log(`[dispatch] warm-up: ${params.warmup} containers each way`);
  await direct('direct', params.warmup, params.concurrency);
  await direct('direct+', params.warmup, params.concurrency);
  await viaKiln(params.warmup);

  type System = Direct | 'kiln';
  const rounds: {
    system: System;
    seconds: number;
    failures: number;
    cpu: Record<string, number>;
  }[] = [];
  const queuedToRunning: number[] = [];
  const runningToEnd: number[] = [];
  const statuses: Record<string, number> = {};
  const kilnWindows: Window[] = [];
  for (let r = 0; r < params.rounds; r++) {
    // ABBA: direct, direct+, kiln, then kiln, direct+, direct, …
    const order: System[] =
      r % 2 === 0 ? ['direct', 'direct+', 'kiln'] : ['kiln', 'direct+', 'direct'];
    for (const system of order) {
      const before = sampleCpu(kiln.pids);
      let ms: number;
      let failures: number;
      if (system === 'kiln') {
        const startUs = monotonicUs();
        const result = await viaKiln(params.tasks);
        kilnWindows.push({ startUs, endUs: monotonicUs() });
        ms = result.ms;
        const tasks = await readTasks(project, result.ids);
        for (const task of tasks) {
          statuses[task.status] = (statuses[task.status] ?? 0) + 1;
          queuedToRunning.push(Date.parse(task.start_time) - Date.parse(task.created_at));
          runningToEnd.push(Date.parse(task.end_time) - Date.parse(task.start_time));
        }
        failures = tasks.filter((task) => task.status !== 'complete').length;
      } else {
        ({ ms, failures } = await direct(system, params.tasks, params.concurrency));
      }
      const cpu = cpuBetween(before, sampleCpu(kiln.pids));
      rounds.push({ system, seconds: round(ms / 1000, 2), failures, cpu });
      console.log(`[dispatch] ${system}: ${params.tasks} containers in ${fmt(ms / 1000, 2)} s`);
    }
  }
  const wall = (system: System) =>
    rounds.filter((r) => r.system === system).reduce((sum, r) => sum + r.seconds, 0);
  const mean = (system: System) => wall(system) / params.rounds;
  const ratio = wall('kiln') / wall('direct');

  // Unsaturated: one task at a time, so queued→running is Kiln's own dispatch latency.
  console.log(`[dispatch] latency probe: ${params.probe} tasks one at a time, each way`);
  const probe = {
    queuedToRunning: [] as number[],
    kilnEndToEnd: [] as number[],
    direct: [] as number[],
    directPlus: [] as number[],
  };
  for (let i = 0; i < params.probe; i++) {
    const result = await viaKiln(1);
    const [task] = await readTasks(project, result.ids);
    probe.queuedToRunning.push(Date.parse(task.start_time) - Date.parse(task.created_at));
    probe.kilnEndToEnd.push(result.ms);
  }
  const directSteps: Steps = {};
  const directPlusSteps: Steps = {};
  for (let i = 0; i < params.probe; i++) {
    probe.direct.push((await direct('direct', 1, 1, directSteps)).ms);
    probe.directPlus.push((await direct('direct+', 1, 1, directPlusSteps)).ms);
  }
  const p50s = (steps: Steps) =>
    Object.fromEntries(Object.entries(steps).map(([name, ms]) => [name, summarize(ms).p50]));

  let profiles;
  if (ctx.profile) {
    await kiln.worker!.stop();
    await kiln.api.stop();
    profiles = {
      worker: summarizeProfile('dispatch-worker', kilnWindows),
      api: summarizeProfile('dispatch-api', kilnWindows),
    };
  }

  const saturated = summarize(queuedToRunning);
  const unsaturated = summarize(probe.queuedToRunning);
  const failures = rounds.reduce((sum, r) => sum + r.failures, 0);
  const n = params.tasks;
  const rows: Row[] = [
    {
      metric: `direct dockerode, ${n} containers, ${params.concurrency} at a time`,
      value: `${fmt(mean('direct'), 2)} s`,
    },
    {
      metric: `Kiln, ${n} tasks, KILN_WORKER_CONCURRENCY=${params.concurrency}`,
      value: `${fmt(mean('kiln'), 2)} s`,
    },
    {
      metric: 'Kiln / direct wall time',
      value: `${fmt(ratio, 2)}×`,
      target: '≤ 1.15×',
      met: ratio <= 1.15,
    },
    {
      metric: `queued→running p50 / p99 (${n} queued at once)`,
      value: `${fmt(saturated.p50)} / ${fmt(saturated.p99)} ms`,
    },
    {
      metric: 'queued→running p50 / p99 (one at a time)',
      value: `${fmt(unsaturated.p50)} / ${fmt(unsaturated.p99)} ms`,
    },
    {
      metric: 'diag: direct+ (Kiln’s Docker calls, no Kiln)',
      value: `${fmt(mean('direct+'), 2)} s = ${fmt(wall('direct+') / wall('direct'), 2)}× direct`,
    },
    {
      metric: 'diag: one at a time, p50: direct / direct+ / Kiln',
      value: `${fmt(summarize(probe.direct).p50)} / ${fmt(summarize(probe.directPlus).p50)} / ${fmt(summarize(probe.kilnEndToEnd).p50)} ms`,
    },
    { metric: 'failed tasks / containers', value: String(failures) },
  ];
  return {
    ...resultHeader('dispatch', ctx, startedAt),
    params: {
      ...params,
      order:
        'warm-up (direct, direct+, Kiln), then rounds in ABBA order: direct, direct+, kiln, then kiln, direct+, direct, …; then the one-at-a-time probe (Kiln ×probe, then direct and direct+ alternately)',
      image: TEST_IMAGE,
      payload: '{}',
    },
    rows,
    details: {
      ratio: round(ratio, 3),
      ratioKilnToDirectPlus: round(wall('kiln') / wall('direct+'), 3),
      meanSeconds: {
        direct: round(mean('direct'), 2),
        'direct+': round(mean('direct+'), 2),
        kiln: round(mean('kiln'), 2),
      },
      rounds,
      kilnStatuses: statuses,
      queuedToRunningMs: saturated,
      runningToEndMs: summarize(runningToEnd),
      probe: {
        queuedToRunningMs: unsaturated,
        kilnPostToRemovedMs: summarize(probe.kilnEndToEnd),
        directCreateToRemovedMs: summarize(probe.direct),
        directPlusCreateToRemovedMs: summarize(probe.directPlus),
        directStepsP50Ms: p50s(directSteps),
        directPlusStepsP50Ms: p50s(directPlusSteps),
      },
      profiles,
    },
  };
}

type Direct = 'direct' | 'direct+';
type Steps = Record<string, number[]>;

/**
 * Runs `count` containers `concurrency` at a time. `direct`: what the brief asks for — create
 * (hardened), attach, start, wait, remove. `direct+`: the Docker calls Kiln's worker makes for a
 * task (libs/docker/src/docker-engine.ts, apps/worker/src/task-runner.ts), without Kiln: with
 * `bind` delivery, write the payload and config files to a host directory; create with the
 * contract's env/labels/working dir, an open STDIN, a tmpfs TASK_DIR and (`bind`) the read-only
 * mount of that directory; with `archive` delivery, copy the files in (putArchive); hijacked
 * attach, start, payload on STDIN, wait, remove (and the files). The worker inspects the image
 * once a minute and the container only after an exit 137, so neither is done here. The
 * difference between the two is the cost of those extra Docker calls; between `direct+` and
 * Kiln, Kiln's own (Redis, Postgres, scheduling).
 */
async function directRun(
  docker: Docker,
  run: DirectRun,
  mode: Direct,
  count: number,
  concurrency: number,
  check: () => void,
  steps?: Steps,
): Promise<{ ms: number; failures: number }> {
  let failures = 0;
  const result = await runBatches(
    count,
    1,
    concurrency,
    async () => {
      if (!(await runContainer(docker, run, mode, steps))) failures++;
    },
    check,
  );
  return { ms: result.ms, failures };
}

interface DirectRun {
  /** Label value of this run's containers. */
  run: string;
  /** How direct+ delivers the contract files, as Kiln's worker does. */
  delivery: Delivery;
  /** Host directory of direct+'s per-container file directories (`bind`). */
  filesRoot: string;
}

async function runContainer(docker: Docker, direct: DirectRun, mode: Direct, steps?: Steps) {
  const step = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await work();
    } finally {
      (steps ??= {})[name] = [...(steps[name] ?? []), performance.now() - started];
    }
  };
  const kilnLike = mode === 'direct+';
  const bind = kilnLike && direct.delivery === 'bind';
  const taskId = randomBytes(12).toString('hex');
  const filesDir = join(direct.filesRoot, `${taskId}.1`);
  // As TaskFiles.write does it (apps/worker/src/task-files.ts).
  if (bind) {
    await step('write files', async () => {
      await mkdir(filesDir, { recursive: true });
      await chmod(filesDir, 0o755);
      for (const [name, content] of [
        ['payload.json', '{}'],
        ['config.json', ''],
      ]) {
        await writeFile(join(filesDir, name), content, { mode: 0o444 });
        await chmod(join(filesDir, name), 0o444);
      }
    });
  }
  const container = await step('create', () =>
    docker.createContainer({
      Image: TEST_IMAGE,
      Labels: {
        'kiln.bench': direct.run,
        ...(kilnLike ? { 'kiln.task': taskId, 'kiln.attempt': '1' } : {}),
      },
      User: '65534:65534',
      ...(kilnLike
        ? {
            Env: [
              'PAYLOAD_FILE=/mnt/kiln/payload.json',
              'CONFIG_FILE=/mnt/kiln/config.json',
              `TASK_ID=${taskId}`,
              'TASK_DIR=/mnt/task',
            ],
            WorkingDir: '/mnt/task',
            AttachStdin: true,
            OpenStdin: true,
            StdinOnce: true,
          }
        : {}),
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      NetworkDisabled: true,
      HostConfig: {
        NetworkMode: 'none',
        Memory: 512 * MiB,
        MemorySwap: 512 * MiB,
        PidsLimit: 256,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        Privileged: false,
        LogConfig: { Type: 'none', Config: {} },
        ...(kilnLike
          ? {
              Binds: [],
              Mounts: bind
                ? [{ Type: 'bind', Source: filesDir, Target: '/mnt/kiln', ReadOnly: true }]
                : [],
              Tmpfs: {
                '/mnt/task': `rw,exec,nosuid,nodev,size=${256 * MiB},mode=0700,uid=65534,gid=65534`,
              },
            }
          : {}),
        AutoRemove: false,
      },
    }),
  );
  try {
    if (kilnLike && !bind) {
      await step('putArchive', () =>
        container.putArchive(
          tarArchive([
            { path: 'mnt/kiln', mode: 0o755, uid: 0, gid: 0 },
            {
              path: 'mnt/kiln/payload.json',
              content: Buffer.from('{}'),
              mode: 0o444,
              uid: 0,
              gid: 0,
            },
            { path: 'mnt/kiln/config.json', content: Buffer.alloc(0), mode: 0o444, uid: 0, gid: 0 },
          ]),
          { path: '/' },
        ),
      );
    }
    const stream = await step<NodeJS.ReadWriteStream>('attach', () =>
      container.attach({
        stream: true,
        stdout: true,
        stderr: true,
        ...(kilnLike ? { stdin: true, hijack: true } : {}),
      }),
    );
    let bytes = 0;
    const output = new Promise<void>((resolve) => {
      stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', () => resolve());
    });
    await step('start', () => container.start());
    if (kilnLike) stream.end('{}');
    const exit = (await step('wait', () => container.wait())) as { StatusCode: number };
    await step('drain output', () => Promise.race([output, sleep(10_000)]));
    return exit.StatusCode === 0 && bytes > 0;
  } finally {
    await step('remove', () => container.remove({ force: true, v: true }));
    if (bind) await step('remove files', () => rm(filesDir, { recursive: true, force: true }));
  }
}

/**
 * Queues `count` tasks (100 a request) and waits until every one is final and the worker has no
 * container left: the same end point as the direct run's last `remove`.
 */
async function kilnRun(
  project: Project,
  db: Pool,
  docker: Docker,
  workerId: string,
  count: number,
  check: () => void,
): Promise<{ ms: number; ids: string[] }> {
  const started = performance.now();
  const ids: string[] = [];
  for (let queued = 0; queued < count; queued += 100) {
    ids.push(...(await queueTasks(project, Math.min(100, count - queued))).ids);
  }
  for (;;) {
    check();
    const { rows } = await db.query<{ done: string }>(
      `SELECT count(*) AS done FROM tasks WHERE id = ANY($1) AND status = ANY($2)`,
      [ids, FINAL_STATUSES],
    );
    if (Number(rows[0].done) === count) {
      const left = await docker.listContainers({
        all: true,
        filters: { label: [`kiln.worker=${workerId}`] },
      });
      if (left.length === 0) break;
    }
    await sleep(count === 1 ? 10 : 50);
  }
  return { ms: performance.now() - started, ids };
}

async function readTasks(project: Project, ids: string[]): Promise<any[]> {
  const tasks: any[] = [];
  await runBatches(ids.length, 1, 4, async (_size, index) => {
    const answer = await project.api.ok('GET', `/2/projects/${project.id}/tasks/${ids[index]}`);
    tasks[index] = answer.body;
  });
  return tasks;
}
