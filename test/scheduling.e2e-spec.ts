import type { ChildProcess } from 'node:child_process';
import Docker from 'dockerode';
import Bull from 'bull';
import {
  call,
  e2e,
  getTask,
  newProject,
  queueTask,
  registerCode,
  taskLog,
  TestProject,
  waitForTask,
  grantCluster,
  waitUntil,
} from './support/kiln';
import { startWorker, stopApp } from './support/processes';

/** What a user can observe of how tasks are scheduled: priority, concurrency, retries, clusters. */
describe('scheduling', () => {
  let project: TestProject;
  const workers: ChildProcess[] = [];
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET });

  /** A worker of its own cluster, so the shared default worker never takes these tasks. */
  async function clusterWorker(
    cluster: string,
    id: string,
    extra: Record<string, string> = {},
  ): Promise<ChildProcess> {
    const child = await startWorker(
      {
        ...e2e().env,
        KILN_WORKER_ID: id,
        KILN_WORKER_CLUSTER: cluster,
        KILN_WORKER_HEARTBEAT_SECONDS: '1',
        ...extra,
      },
      id,
    );
    workers.push(child);
    return child;
  }

  beforeAll(async () => {
    project = await newProject('scheduling');
    await registerCode(project, 'job');
  });

  afterAll(async () => {
    await Promise.all(workers.map((worker) => stopApp(worker)));
  });

  it('starts higher-priority tasks first when workers are saturated', async () => {
    const cluster = `prio-${Date.now()}`;
    await grantCluster(project, cluster);
    const blocker = await queueTask(project, { code_name: 'job', payload: '{"sleep":3}', cluster });
    await clusterWorker(cluster, `${cluster}-w`, { KILN_WORKER_CONCURRENCY: '1' });
    await waitForTask(project, blocker, (t) => t.status === 'running');
    const low = await queueTask(project, { code_name: 'job', payload: '{}', cluster, priority: 0 });
    const mid = await queueTask(project, { code_name: 'job', payload: '{}', cluster, priority: 1 });
    const high = await queueTask(project, {
      code_name: 'job',
      payload: '{}',
      cluster,
      priority: 2,
    });
    const done = await Promise.all([high, mid, low].map((id) => waitForTask(project, id)));
    const starts = done.map((t) => Date.parse(t.start_time));
    expect(starts[0]).toBeLessThan(starts[1]);
    expect(starts[1]).toBeLessThan(starts[2]);
  });

  it('holds max_concurrency across all workers of a cluster: excess tasks wait, none are rejected', async () => {
    const cluster = `mc-${Date.now()}`;
    await grantCluster(project, cluster);
    await registerCode(project, 'limited', { max_concurrency: 2 });
    await clusterWorker(cluster, `${cluster}-a`, { KILN_WORKER_CONCURRENCY: '3' });
    await clusterWorker(cluster, `${cluster}-b`, { KILN_WORKER_CONCURRENCY: '3' });
    const ids = await Promise.all(
      Array.from({ length: 6 }, () =>
        queueTask(project, { code_name: 'limited', payload: '{"sleep":2}', cluster }),
      ),
    );
    // Sampled at every check: the most tasks running at once, and no task rejected meanwhile.
    let most = 0;
    let tasks: any[] = [];
    await waitUntil(
      'all six complete',
      async () => {
        tasks = await Promise.all(ids.map((id) => getTask(project, id)));
        const live = tasks.filter((t) => t.status === 'running' || t.status === 'preparing');
        most = Math.max(most, live.length);
        expect(
          tasks.every((t) => ['queued', 'preparing', 'running', 'complete'].includes(t.status)),
        ).toBe(true);
        return tasks.every((t) => t.status === 'complete');
      },
      { timeoutMs: 90_000, state: () => tasks.map((t) => t.status).join(' ') },
    );
    expect(most).toBe(2);
    // Every run overlapped with at most one other run.
    const runs = (await Promise.all(ids.map((id) => getTask(project, id)))).map((t) => [
      Date.parse(t.start_time),
      Date.parse(t.end_time),
    ]);
    for (const [start] of runs) {
      expect(runs.filter(([s, e]) => s <= start && start < e).length).toBeLessThanOrEqual(2);
    }
  });

  it('retries a failed task automatically, up to `retries`, after `retries_delay`', async () => {
    await registerCode(project, 'flaky', { retries: 2, retries_delay: 1 });
    const first = await queueTask(project, { code_name: 'flaky', payload: '{"exit":5}' });
    const chain = [await waitForTask(project, first)];
    while (chain[chain.length - 1].retry_task_id) {
      chain.push(await waitForTask(project, chain[chain.length - 1].retry_task_id));
    }
    expect(chain.map((t) => [t.status, t.retry_count])).toEqual([
      ['error', 0],
      ['error', 1],
      ['error', 2],
    ]);
    expect(chain[1].original_task_id).toBe(chain[0].id);
    expect(chain[2].original_task_id).toBe(chain[1].id);
    expect(chain[1].delay).toBe(1);
    expect(Date.parse(chain[1].start_time) - Date.parse(chain[0].end_time)).toBeGreaterThanOrEqual(
      900,
    );
  });

  it('runs a task of cluster "gpu" only on a worker started for that cluster', async () => {
    const cluster = `gpu-${Date.now()}`;
    await grantCluster(project, cluster);
    const id = await queueTask(project, {
      code_name: 'job',
      payload: '{"env":"KILN_TEST_VARIANT"}',
      cluster,
    });
    const other = await queueTask(project, { code_name: 'job', payload: '{}' });
    await waitForTask(project, other);
    expect((await getTask(project, id)).status).toBe('queued');
    await clusterWorker(cluster, `${cluster}-w`);
    expect((await waitForTask(project, id)).status).toBe('complete');
  });

  it('caps a huge log at the configured size, keeping head and tail, with the worker memory bounded', async () => {
    const cluster = `logcap-${Date.now()}`;
    await grantCluster(project, cluster);
    const worker = await clusterWorker(cluster, `${cluster}-w`, { KILN_LOG_MAX_BYTES: '65536' });
    const id = await queueTask(project, { code_name: 'job', payload: '{"lines":50000}', cluster });
    const task = await waitForTask(project, id);
    expect(task.status).toBe('complete');
    const log = (await taskLog(project, id)).text;
    expect(log.startsWith('{"lines":50000}\nline 1\nline 2\n')).toBe(true);
    expect(log.endsWith('line 49999\nline 50000\n')).toBe(true);
    expect(log).toMatch(/\n\[kiln: \d+ bytes of output omitted\]\n/);
    expect(Buffer.byteLength(log)).toBeLessThan(65536 + 100);
    expect(task.log_size).toBe(Buffer.byteLength(log));
    expect(worker.exitCode).toBeNull();
  });

  it('a worker that starts reaps containers labelled with its id from an earlier life', async () => {
    const id = `reaper-${Date.now()}`;
    const container = await docker.createContainer({
      Image: 'kiln-test/busybox:latest',
      Cmd: ['sleep', '300'],
      Labels: { 'kiln.worker': id, 'kiln.task': 'f'.repeat(24), 'kiln.attempt': '1' },
      HostConfig: { NetworkMode: 'none' },
    });
    await container.start();
    await clusterWorker(`reap-${Date.now()}`, id);
    // The worker reaps while it boots; allow for a slow boot on a busy machine.
    let left: Docker.ContainerInfo[] = [];
    await waitUntil(
      'the container reaped',
      async () =>
        (left = await docker.listContainers({
          all: true,
          filters: { label: [`kiln.worker=${id}`] },
        })).length === 0,
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    expect(left).toEqual([]);
  });

  it('a late or duplicate job never moves a finished task', async () => {
    const id = await queueTask(project, { code_name: 'job', payload: '{}' });
    const done = await waitForTask(project, id);
    const { env } = e2e();
    const queue = new Bull('tasks.default.p0', e2e().env.REDIS_URL, {
      prefix: env.KILN_QUEUE_PREFIX,
    });
    try {
      await queue.add(
        { taskId: id, projectId: project.projectId },
        { jobId: id, removeOnComplete: true },
      );
      await waitUntil('the job gone', async () => !(await queue.getJob(id)), {
        timeoutMs: 5000,
      });
      expect(await queue.getJob(id)).toBeNull();
    } finally {
      await queue.close();
    }
    expect(await getTask(project, id)).toEqual(done);
    const logs = await call('GET', `/2/projects/${project.projectId}/tasks/${id}/log`, {
      token: project.token,
    });
    expect(logs.text).toBe('{}\n');
  });
});
