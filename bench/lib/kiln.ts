import Bull, { Queue } from 'bull';
import Docker from 'dockerode';
import Redis from 'ioredis';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TEST_IMAGE } from '../../test/support/images';
import { freePortFrom, sleep, waitForHealthy } from '../../test/support/processes';
import { kilnQueueOptions } from '../../test/support/redis';
import { Api } from './http';
import { BENCH_HOME, Infra, setting } from './env';
import { App, defer, startApp } from './procs';

export const CODE_NAME = 'bench';
export const FINAL_STATUSES = ['complete', 'error', 'cancelled', 'killed', 'timeout'];

export interface Kiln {
  url: string;
  adminToken: string;
  /** KILN_QUEUE_PREFIX of this run: every Redis key it makes starts with `<prefix>:`. */
  prefix: string;
  workerId: string;
  env: Record<string, string>;
  api: App;
  worker?: App;
  /** The worker's `/metrics` (admin token), when it was asked for. */
  workerMetricsUrl?: string;
  /** Pids of Kiln's processes, for CPU accounting. */
  pids: Record<number, string>;
}

export interface KilnOptions {
  /** Start one worker with this concurrency (no worker when absent). */
  workerConcurrency?: number;
  /** Give the worker a health server (a free port after the API's), for its `/metrics`. */
  workerMetrics?: boolean;
  /** The worker's KILN_CONTRACT_DELIVERY (Kiln's default, `bind`, when absent). */
  contractDelivery?: 'bind' | 'archive';
  profile?: boolean;
  /** More configuration for Kiln's processes. */
  env?: Record<string, string>;
}

/** KILN_TASK_FILES_DIR of the benchmarks' workers: a tmpfs, as Kiln's default. */
export const BENCH_TASK_FILES_DIR = join(
  existsSync('/dev/shm') ? '/dev/shm' : BENCH_HOME,
  'kiln-bench-task-files',
);

/**
 * Starts the API (and maybe one worker) from the dist/ snapshot against the benchmark database,
 * with a queue prefix, worker id and admin token of this run's own. No scheduler: nothing in the
 * benchmarks needs the reconciler.
 */
export async function startKiln(
  infra: Infra,
  name: string,
  options: KilnOptions = {},
): Promise<Kiln> {
  const run = randomBytes(4).toString('hex');
  // The first free port from 18500 (KILN_BENCH_PORT overrides the start).
  const port = await freePortFrom(Number(process.env.KILN_BENCH_PORT ?? 18500), 200);
  const prefix = `kiln-bench-${run}`;
  const workerId = `bench-${run}`;
  const env: Record<string, string> = {
    DATABASE_URL: infra.databaseUrl,
    REDIS_URL: infra.redisUrl,
    DOCKER_SOCKET: infra.dockerSocket,
    KILN_API_HOST: '127.0.0.1',
    KILN_API_PORT: String(port),
    KILN_ADMIN_TOKEN: `admin-${randomBytes(16).toString('hex')}`,
    KILN_QUEUE_PREFIX: prefix,
    // KILN_BENCH_LOG_LEVEL=warn: no access or task transition lines (their cost:
    // docs/benchmarks.md, ingest); by default every line is written, as in production.
    KILN_LOG_LEVEL: process.env.KILN_BENCH_LOG_LEVEL ?? 'log',
    // The benchmarks run the locally built test images, as `npm start` and the tests do.
    KILN_SHARED_IMAGES: 'kiln-test/*',
    // KILN_BENCH_METRICS=0: Kiln's processes count no metrics (their cost: docs/benchmarks.md).
    KILN_METRICS: setting('KILN_BENCH_METRICS', 1) === 0 ? '0' : '1',
    ...options.env,
  };
  defer(`delete Redis keys ${prefix}:*`, async () => {
    await deleteKeys(infra.redisUrl, prefix);
  });
  const api = startApp('api', env, `${name}-api`, options.profile);
  const kiln: Kiln = {
    url: `http://127.0.0.1:${port}`,
    adminToken: env.KILN_ADMIN_TOKEN,
    prefix,
    workerId,
    env,
    api,
    pids: { [api.child.pid!]: 'kiln api' },
  };
  if (options.workerConcurrency) {
    const healthPort = options.workerMetrics ? await freePortFrom(port + 1, 200) : 0;
    defer(`remove ${BENCH_TASK_FILES_DIR}/${workerId}`, () =>
      rmSync(join(BENCH_TASK_FILES_DIR, workerId), { recursive: true, force: true }),
    );
    const worker = startApp(
      'worker',
      {
        ...env,
        KILN_WORKER_ID: workerId,
        KILN_WORKER_CLUSTER: 'default',
        KILN_WORKER_CONCURRENCY: String(options.workerConcurrency),
        KILN_WORKER_HEALTH_PORT: String(healthPort),
        KILN_CONTAINER_NETWORK: 'none',
        KILN_TASK_FILES_DIR: BENCH_TASK_FILES_DIR,
        ...(options.contractDelivery ? { KILN_CONTRACT_DELIVERY: options.contractDelivery } : {}),
      },
      `${name}-worker`,
      options.profile,
    );
    kiln.worker = worker;
    if (healthPort) kiln.workerMetricsUrl = `http://127.0.0.1:${healthPort}/metrics`;
    kiln.pids[worker.child.pid!] = 'kiln worker';
  }
  // Below the `log` level the processes do not say they are up: the API's health says it.
  const says = env.KILN_LOG_LEVEL === 'log' || env.KILN_LOG_LEVEL === 'debug';
  if (says) await api.waitFor(/Kiln API on http/, 60_000);
  await waitForHealthy(`${kiln.url}/healthz`, 60_000);
  if (kiln.worker) {
    if (says) await kiln.worker.waitFor(/takes cluster \\?"default\\?" tasks/, 60_000);
    else await sleep(5000);
  }
  return kiln;
}

export interface Project {
  id: string;
  api: Api;
}

/** A project, a token for it, and the `bench` code on the test image. */
export async function newProject(kiln: Kiln, name: string): Promise<Project> {
  const admin = new Api(kiln.url, kiln.adminToken);
  const created = await admin.ok('POST', '/2/projects', { name });
  const projectId = created.body.id as string;
  const issued = await admin.ok('POST', `/2/projects/${projectId}/tokens`, {});
  const api = new Api(kiln.url, issued.body.token as string);
  await api.ok('POST', `/2/projects/${projectId}/codes`, { name: CODE_NAME, image: TEST_IMAGE });
  return { id: projectId, api };
}

/** The request body queueing `count` tasks of `code` (trivial ones of `bench` by default). */
export function tasksBody(count: number, code = CODE_NAME, payload = '{}'): string {
  return JSON.stringify({
    tasks: Array.from({ length: count }, () => ({ code_name: code, payload })),
  });
}

/** Queues `count` (≤100) tasks; returns their ids. */
export async function queueTasks(project: Project, count: number, body = tasksBody(count)) {
  const answer = await project.api.ok('POST', `/2/projects/${project.id}/tasks`, undefined, body);
  const ids = (answer.body.tasks as { id: string }[]).map((task) => task.id);
  if (ids.length !== count) throw new Error(`asked for ${count} tasks, got ${ids.length}`);
  return { ids, ms: answer.ms };
}

/** Removes (killing) every container of the engine whose `label` is `value`. */
export async function removeLabelled(docker: Docker, label: string, value: string): Promise<void> {
  const containers = await docker.listContainers({
    all: true,
    filters: { label: [`${label}=${value}`] },
  });
  for (const container of containers) {
    await docker
      .getContainer(container.Id)
      .remove({ force: true, v: true })
      .catch(() => undefined);
  }
}

// ---------------------------------------------------------------- Redis / Bull ----

/** Kiln's Bull connection settings (libs/queue/src/queue.module.ts): shared client + subscriber. */
export function bullQueue(redisUrl: string, prefix: string, name: string): Queue {
  const clients: Redis[] = [];
  const queue = new Bull(name, kilnQueueOptions(redisUrl, prefix, clients));
  queue.on('error', (error) => console.error(`[bench] queue ${name}: ${error.message}`));
  const close = queue.close.bind(queue);
  queue.close = async (doNotWaitJobs?: boolean) => {
    await close(doNotWaitJobs).catch(() => undefined);
    for (const c of clients) c.disconnect();
  };
  return queue;
}

/** Deletes every key under `<prefix>:` (SCAN + UNLINK, so Redis is never blocked for long). */
export async function deleteKeys(redisUrl: string, prefix: string): Promise<number> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 5000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}

/** Length of a Bull queue's wait list. */
export async function waitingCount(
  redisUrl: string,
  prefix: string,
  queue: string,
): Promise<number> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  try {
    return await redis.llen(`${prefix}:${queue}:wait`);
  } finally {
    redis.disconnect();
  }
}

/** A project's task queue of the default cluster at priority 0 (libs/queue's `taskQueueName`). */
export function defaultQueue(projectId: string): string {
  return `tasks.default/${projectId}.p0`;
}
