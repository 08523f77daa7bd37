import Docker from 'dockerode';
import { rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FINAL_STATUSES, waitUntil } from './support/kiln';
import { NODE_HOT, hotCalls } from './support/hot';
import { OwnStack } from './support/own-stack';
import { freePort, sleep, waitForHealthy } from './support/processes';

const BREAKER = 'kiln-test/hot-breaker:latest';

/**
 * Issue 17, hot containers (docs/hot.md), end to end on a stack of the suite's own: a worker with
 * 4 slots and at most 6 warm containers, a second worker (cluster `tight`) that sees memory as
 * always short, two projects. The images are the locally built `kiln-test/node-hot` (an
 * `@kiln/fdk` handler driven by its payload) and `kiln-test/hot-breaker` (a container that breaks
 * the contract in the way its command names).
 */
describe('hot containers', () => {
  const stack = new OwnStack('hot', 130);
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET });
  type Project = { id: string; token: string };
  let a: Project;
  let b: Project;
  let workerPort: number;

  const { as, queue: queueAll, finished, log } = hotCalls(stack);

  async function register(project: Project, name: string, settings: object = {}) {
    const res = await as(project, 'POST', '/codes', {
      name,
      image: NODE_HOT,
      hot: {},
      ...settings,
    });
    expect(res).toMatchObject({ status: 200 });
    return res.body.id as string;
  }

  async function queue(project: Project, code: string, payload: object, extra: object = {}) {
    return (await queueAll(project, code, [payload], extra))[0];
  }

  /** The container a node-hot task ran in: its first line says `container=<hostname>`. */
  const containerOf = (text: string) => /container=(\S+)/.exec(text)?.[1];

  /** Runs one task to its end; its final state and log. */
  async function run(project: Project, code: string, payload: object, extra: object = {}) {
    const id = await queue(project, code, payload, extra);
    const task = await finished(project, id);
    return { id, task, log: await log(project, id) };
  }

  /** The hot containers of a code revision on the engine (running or not). */
  const containersOf = (revision: string) =>
    docker.listContainers({ all: true, filters: { label: [`kiln.hot=${revision}`] } });

  /** The hot containers of a code's latest revision. */
  async function hotContainers(project: Project, codeId: string) {
    const code = (await as(project, 'GET', `/codes/${codeId}`)).body;
    return containersOf(code.latest_history_id);
  }

  beforeAll(async () => {
    await stack.create({ KILN_HOT_MAX_CONTAINERS: '6', KILN_HOT_CODE_MAX_CONTAINERS: '4' });
    await stack.startApi();
    workerPort = await freePort();
    stack.start('worker', {
      KILN_WORKER_ID: `${stack.env.KILN_QUEUE_PREFIX}-worker`,
      KILN_WORKER_HEALTH_PORT: String(workerPort),
      KILN_WORKER_CONCURRENCY: '4',
    });
    await waitForHealthy(`http://127.0.0.1:${workerPort}/healthz`);
    await stack.startWorker(
      { KILN_WORKER_CLUSTER: 'tight', KILN_HOT_MIN_AVAILABLE_MB: String(1024 * 1024 * 1024) },
      'tight',
    );
    a = await stack.newProject('hot-a');
    b = await stack.newProject('hot-b');
    await stack.grant(a.id, 'tight');
  }, 120_000);

  afterAll(async () => {
    await stack.close();
  });

  it('takes the hot setting with defaults, shows it on the code and revision, and refuses bad ones', async () => {
    const id = await register(a, 'shown', { hot: { idle_timeout: 5 } });
    const hot = { idle_timeout: 5, max_tasks: 1000, max_containers: 2 };
    expect((await as(a, 'GET', `/codes/${id}`)).body).toMatchObject({ hot });
    expect((await as(a, 'GET', `/codes/${id}/revisions`)).body.revisions[0]).toMatchObject({ hot });
    await register(a, 'shown', { hot: null });
    expect((await as(a, 'GET', `/codes/${id}`)).body).toMatchObject({ rev: 2, hot: null });
    for (const [bad, msg] of [
      [{ max_containers: 5 }, 'hot.max_containers must be a whole number from 1 to 4'],
      [{ idle_timeout: 'soon' }, 'hot.idle_timeout must be a whole number from 1 to 3600'],
      [{ warm: true }, 'hot.warm is not a setting'],
      [7, 'hot must be an object'],
    ] as const) {
      const res = await as(a, 'POST', '/codes', { name: 'shown', image: NODE_HOT, hot: bad });
      expect(res.status).toBe(400);
      expect(res.body.msg).toContain(msg);
    }
    expect((await as(a, 'GET', `/codes/${id}`)).body.rev).toBe(2);
  });

  it("reuses warm containers, each task's log holding its own lines and no other's", async () => {
    const codeId = await register(a, 'echo');
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      ids.push(
        await queue(a, 'echo', { lines: [`out ${i}`, `again ${i}`], errLines: [`err ${i}`] }),
      );
    }
    const containers = new Set<string>();
    for (const [i, id] of ids.entries()) {
      const task = await finished(a, id);
      expect(task).toMatchObject({ status: 'complete', msg: '' });
      const text = await log(a, id);
      containers.add(containerOf(text)!);
      const lines = text.split('\n').filter((line) => line !== '');
      expect(lines.sort()).toEqual(
        [
          `container=${containerOf(text)} pid=${/pid=(\d+)/.exec(text)?.[1]} task=${id}`,
          `out ${i}`,
          `again ${i}`,
          `err ${i}`,
        ].sort(),
      );
    }
    // max_containers 2: twelve tasks, at most two containers.
    expect(containers.size).toBeGreaterThanOrEqual(1);
    expect(containers.size).toBeLessThanOrEqual(2);
    expect((await hotContainers(a, codeId)).length).toBeLessThanOrEqual(2);
  });

  it('answers a synchronous invoke of a hot code with its output', async () => {
    await register(a, 'invoked', { hot: { max_containers: 1 } });
    for (const i of [1, 2]) {
      const res = await as(a, 'POST', '/codes/invoked/invoke?wait=60', {
        payload: JSON.stringify({ lines: [`via invoke ${i}`], result: `r${i}` }),
      });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: 'complete', msg: `r${i}`, truncated: false });
      expect(res.body.output).toContain(`via invoke ${i}\n`);
      expect(res.body.output).toContain(`task=${res.body.id}`);
    }
  });

  it('keeps a last line without a newline, and drops output printed between tasks', async () => {
    await register(a, 'chatty', { hot: { max_containers: 1, idle_timeout: 60 } });
    const first = await run(a, 'chatty', { background: true, noNewline: 'no newline' });
    expect(first.task.status).toBe('complete');
    expect(first.log).toContain('no newline');
    await sleep(500); // ticks between the tasks: no task's
    const second = await run(a, 'chatty', { lines: ['second'], sleepMs: 300 });
    expect(containerOf(second.log)).toBe(containerOf(first.log));
    expect(second.log).toContain('second');
    const ticks = (text: string) =>
      [...text.matchAll(/background tick (\d+)/g)].map((match) => Number(match[1]));
    // The second task holds the ticks printed while it ran, in order and without a gap; those
    // printed between the tasks (at least one in half a second) reached no log.
    const during = ticks(second.log);
    expect(during.length).toBeGreaterThan(0);
    expect(during).toEqual(during.map((_, i) => during[0] + i));
    expect(during[0]).toBeGreaterThan(Math.max(0, ...ticks(first.log)) + 1);
  });

  it('sets progress from the container, and empties TASK_DIR between tasks', async () => {
    await register(a, 'files', { hot: { max_containers: 1 } });
    const first = await run(a, 'files', { progress: [30, 60], writeFile: 'left-behind' });
    expect(first.task).toMatchObject({ status: 'complete', percent: 60 });
    expect(first.log).not.toContain('progress');
    const second = await run(a, 'files', { listTaskDir: true });
    expect(containerOf(second.log)).toBe(containerOf(first.log));
    expect(second.log).toContain('taskdir=[]');
  });

  it('answers error with the handler message, and keeps the container', async () => {
    await register(a, 'failing', { hot: { max_containers: 1 } });
    const failed = await run(a, 'failing', { fail: 'no such user' });
    expect(failed.task).toMatchObject({ status: 'error', msg: 'no such user' });
    const next = await run(a, 'failing', { result: 'done' });
    expect(next.task).toMatchObject({ status: 'complete', msg: 'done' });
    expect(containerOf(next.log)).toBe(containerOf(failed.log));
  });

  it('ends a task whose container crashes `error`, and gives the next task a fresh container', async () => {
    await register(a, 'crashy', { hot: { max_containers: 1 } });
    const before = await run(a, 'crashy', {});
    const crashed = await run(a, 'crashy', { lines: ['about to crash'], exit: 3 });
    expect(crashed.task).toMatchObject({
      status: 'error',
      msg: 'The hot container exited with code 3 during the task',
    });
    expect(crashed.log).toContain('about to crash');
    const after = await run(a, 'crashy', {});
    expect(after.task.status).toBe('complete');
    expect(containerOf(after.log)).not.toBe(containerOf(before.log));
  });

  it('kills and replaces a container at the deadline: `timeout`', async () => {
    await register(a, 'slow', { hot: { max_containers: 1 } });
    const before = await run(a, 'slow', {});
    const slow = await run(a, 'slow', { spinMs: 60_000 }, { timeout: 2 });
    expect(slow.task).toMatchObject({ status: 'timeout', msg: 'Task timed out after 2 s' });
    const after = await run(a, 'slow', {});
    expect(after.task.status).toBe('complete');
    expect(containerOf(after.log)).not.toBe(containerOf(before.log));
  });

  it('cancels a running hot task as a cold one: `cancelled`, its container killed', async () => {
    const codeId = await register(a, 'cancelled', { hot: { max_containers: 1 } });
    const id = await queue(a, 'cancelled', { sleepMs: 60_000 });
    await waitUntil(
      'running',
      async () => (await as(a, 'GET', `/tasks/${id}`)).body.status === 'running',
      {
        timeoutMs: 60_000,
      },
    );
    expect((await as(a, 'POST', `/tasks/${id}/cancel`)).status).toBe(200);
    expect(await finished(a, id)).toMatchObject({ status: 'cancelled' });
    await waitUntil(
      'its container gone',
      async () => (await hotContainers(a, codeId)).length === 0,
      {
        timeoutMs: 30_000,
      },
    );
  });

  it('replaces a container after max_tasks, and stops idle ones after idle_timeout', async () => {
    const codeId = await register(a, 'short-lived', {
      hot: { max_tasks: 2, idle_timeout: 8, max_containers: 1 },
    });
    const seen: string[] = [];
    for (let i = 0; i < 5; i++) seen.push(containerOf((await run(a, 'short-lived', {})).log)!);
    expect(seen[0]).toBe(seen[1]);
    expect(seen[2]).toBe(seen[3]);
    expect(new Set(seen).size).toBe(3);
    await waitUntil(
      'idle containers gone',
      async () => (await hotContainers(a, codeId)).length === 0,
      {
        timeoutMs: 30_000,
      },
    );
  });

  it('never shares a container between two projects with the same image and settings', async () => {
    await register(a, 'twin', { config: { who: 'a' } });
    await register(b, 'twin', { config: { who: 'a' } });
    const fromA = new Set<string>();
    const fromB = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const [ra, rb] = await Promise.all([
        run(a, 'twin', { printConfig: true }),
        run(b, 'twin', { printConfig: true }),
      ]);
      expect([ra.task.status, rb.task.status]).toEqual(['complete', 'complete']);
      fromA.add(containerOf(ra.log)!);
      fromB.add(containerOf(rb.log)!);
      expect(ra.log).toContain('config={"who":"a"}');
    }
    expect([...fromA].filter((container) => fromB.has(container))).toEqual([]);
    // Nor between two revisions of one code.
    await register(a, 'twin', { config: { who: 'a2' } });
    const next = await run(a, 'twin', { printConfig: true });
    expect(next.log).toContain('config={"who":"a2"}');
    expect(fromA.has(containerOf(next.log)!)).toBe(false);
  });

  it('runs hot containers hardened as cold ones, with the socket directory frozen once ready', async () => {
    const codeId = await register(a, 'inspected', { hot: { max_containers: 1, idle_timeout: 60 } });
    await run(a, 'inspected', {});
    const [listed] = await hotContainers(a, codeId);
    const info = await docker.getContainer(listed.Id).inspect();
    expect(info.Config.User).toBe('65534:65534');
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    expect(info.HostConfig.SecurityOpt).toContain('no-new-privileges');
    expect(info.Config.Labels).toMatchObject({ 'kiln.project': a.id });
    const mounts = Object.fromEntries(info.Mounts.map((mount) => [mount.Destination, mount]));
    expect(mounts['/mnt/kiln']).toMatchObject({ RW: false });
    expect(mounts['/mnt/kiln-hot']).toMatchObject({ RW: true });
    expect(statSync(mounts['/mnt/kiln-hot'].Source).mode & 0o7777).toBe(0o755);
  });

  describe('containers that break the contract', () => {
    /** A task of a breaker code running `mode`: its final state once its container is gone. */
    async function brokenTask(mode: string, argument = '') {
      const name = `breaker-${mode}`;
      const codeId = await register(a, name, {
        image: BREAKER,
        command: `node /kiln/breaker.js ${mode} ${argument}`.trim(),
      });
      const { task } = await run(a, name, {});
      await waitUntil(
        'the container gone',
        async () => (await hotContainers(a, codeId)).length === 0,
        { timeoutMs: 30_000 },
      );
      return task;
    }

    it.each([
      ['garbage', 'its answer is not JSON'],
      ['http-500', 'it answered HTTP 500, not 200'],
      ['bad-status', 'its answer\'s status is "weird"'],
      ['close', 'it closed the connection without an answer'],
      ['exit-mid-task', 'The hot container exited with code 3 during the task'],
      ['no-end-fence', 'it did not write both end fences within 2 s of its answer'],
    ])('%s: the task ends `error` saying so, and the container goes', async (mode, msg) => {
      const task = await brokenTask(mode);
      expect(task.status).toBe('error');
      expect(task.msg).toContain(msg);
    });

    it('never-listen: the task ends `error` and no container is left', async () => {
      expect(await brokenTask('never-listen')).toMatchObject({
        status: 'error',
        msg: 'Could not start a hot container: it did not listen on /mnt/kiln-hot/hot.sock within 10 s',
      });
    });

    it("symlink-socket: a link to a socket of the worker's host is never connected to", async () => {
      const trapPath = join(tmpdir(), `kiln-hot-trap-${process.pid}.sock`);
      rmSync(trapPath, { force: true });
      let connections = 0;
      const trap = createServer((socket) => {
        connections++;
        socket.destroy();
      });
      await new Promise<void>((resolve) => trap.listen(trapPath, resolve));
      try {
        const task = await brokenTask('symlink-socket', trapPath);
        expect(task.status).toBe('error');
        expect(task.msg).toContain('Could not start a hot container: it did not listen');
        expect(connections).toBe(0);
      } finally {
        await new Promise((resolve) => trap.close(resolve));
      }
    });
  });

  it('under memory pressure keeps no container: each task gets a fresh one', async () => {
    const codeId = await register(a, 'pressed');
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const done = await run(a, 'pressed', {}, { cluster: 'tight' });
      expect(done.task.status).toBe('complete');
      seen.add(containerOf(done.log)!);
    }
    expect(seen.size).toBe(3);
    await waitUntil(
      'no container kept',
      async () => (await hotContainers(a, codeId)).length === 0,
      {
        timeoutMs: 30_000,
      },
    );
  });

  it('runs the same image cold when the code is not hot (the FDK reads PAYLOAD_FILE)', async () => {
    await register(a, 'cold-fdk', { hot: null });
    const cold = await run(a, 'cold-fdk', { lines: ['cold line'], result: 'ignored cold' });
    expect(cold.task).toMatchObject({ status: 'complete' });
    expect(cold.log).toContain('cold line');
    const failed = await run(a, 'cold-fdk', { fail: 'cold failure' });
    expect(failed.task.status).toBe('error');
    expect(failed.log).toContain('cold failure');
  });

  it("shows the pool on the worker's metrics: containers by state, their start time and reuse", async () => {
    // A container that ran two tasks, stopped (max_tasks): the reuse histogram counts it.
    await register(a, 'counted', { hot: { max_tasks: 2, max_containers: 1 } });
    for (let i = 0; i < 3; i++) expect((await run(a, 'counted', {})).task.status).toBe('complete');
    const res = await fetch(`http://127.0.0.1:${workerPort}/metrics`, {
      headers: { authorization: `OAuth ${stack.adminToken}` },
    });
    expect(res.status).toBe(200);
    const text = await res.text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(value('kiln_hot_container_start_seconds_count')).toBeGreaterThan(0);
    expect(value('kiln_hot_container_tasks_count')).toBeGreaterThan(0);
    expect(value('kiln_hot_container_tasks_sum')).toBeGreaterThan(
      value('kiln_hot_container_tasks_count'),
    );
    expect(text).toMatch(/^kiln_hot_containers\{state="idle"\} \d+$/m);
    expect(text).toMatch(/^kiln_hot_containers\{state="busy"\} \d+$/m);
  });

  it('keeps at most KILN_HOT_MAX_CONTAINERS warm containers on a worker, all codes together', async () => {
    const worker = `${stack.env.KILN_QUEUE_PREFIX}-worker`;
    const codes = ['cap-1', 'cap-2', 'cap-3', 'cap-4'];
    for (const code of codes) await register(a, code, { hot: { max_containers: 2 } });
    const ids: string[] = [];
    for (const code of codes) {
      for (let i = 0; i < 4; i++) ids.push(await queue(a, code, { sleepMs: 300 }));
    }
    let most = 0;
    let pending = ids;
    while (pending.length > 0) {
      const listed = await docker.listContainers({
        filters: { label: [`kiln.worker=${worker}`, 'kiln.hot'] },
      });
      most = Math.max(most, listed.length);
      const states = await Promise.all(
        pending.map(async (id) => (await as(a, 'GET', `/tasks/${id}`)).body),
      );
      expect(
        states.filter((task) => FINAL_STATUSES.includes(task.status) && task.status !== 'complete'),
      ).toEqual([]);
      pending = pending.filter((_, i) => !FINAL_STATUSES.includes(states[i].status));
      await sleep(100);
    }
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(6);
  });

  it('leaves no hot container behind when its worker is killed and starts again', async () => {
    const codeId = await register(a, 'orphan', { hot: { idle_timeout: 3600, max_containers: 1 } });
    await stack.grant(a.id, 'orphans');
    const worker = await stack.startWorker({ KILN_WORKER_CLUSTER: 'orphans' }, 'orphans');
    const first = await run(a, 'orphan', {}, { cluster: 'orphans' });
    expect(first.task.status).toBe('complete');
    expect((await hotContainers(a, codeId)).length).toBe(1);
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.kill('SIGKILL');
    await exited;
    // Killed: nothing removed its warm container.
    expect((await hotContainers(a, codeId)).length).toBe(1);
    await stack.startWorker({ KILN_WORKER_CLUSTER: 'orphans' }, 'orphans');
    // Its earlier life's containers are reaped as it starts, before it takes a task.
    await waitUntil(
      'the orphan reaped',
      async () => (await hotContainers(a, codeId)).length === 0,
      {
        timeoutMs: 30_000,
      },
    );
    const again = await run(a, 'orphan', {}, { cluster: 'orphans' });
    expect(again.task.status).toBe('complete');
  });

  it('removes its warm containers when a worker stops', async () => {
    const codeId = await register(a, 'at-stop', { hot: { idle_timeout: 3600, max_containers: 1 } });
    await run(a, 'at-stop', {});
    const revision = (await as(a, 'GET', `/codes/${codeId}`)).body.latest_history_id;
    expect((await containersOf(revision)).length).toBe(1);
    await stack.stopProcesses();
    expect((await containersOf(revision)).length).toBe(0);
  });
});
