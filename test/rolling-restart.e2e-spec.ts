import { ChildProcess } from 'node:child_process';
import { Client } from 'pg';
import { Kiln } from '@kiln/client';
import { Balancer } from './support/balancer';
import { TEST_IMAGE, waitUntil } from './support/kiln';
import { OwnStack } from './support/own-stack';
import { freePort, sleep, stopApp, waitForHealthy } from './support/processes';

jest.setTimeout(420_000);

const TASKS = 500;
/** Above the balancer's time to mark a server down (support/balancer.ts: 2 failed checks 500 ms apart). */
const DRAIN_SECONDS = 5;

/**
 * Issue 18 item 6: graceful shutdown and a rolling restart. Two API replicas behind a real
 * haproxy (health-checked on /healthz), two schedulers and two workers on one Postgres and Redis.
 * A worker's SIGTERM lets its running tasks finish, or hands them back past its grace; a rolling
 * restart of every process, one at a time, in the middle of a 500-task run loses no task, runs
 * none twice, fails no request of the balancer's clients and breaks no live-log follower.
 */
describe('graceful shutdown and a rolling restart behind a load balancer', () => {
  const stack = new OwnStack('rolling', 100);
  const apiPorts: number[] = [];
  let balancer: Balancer;
  let db: Client;
  let project: { id: string; token: string };
  /** Every process of the stack but the hand-back workers, by label, and how to start it again. */
  const processes = new Map<string, { child: ChildProcess; start: () => Promise<ChildProcess> }>();

  const lb = () => balancer.url;
  const api = async (method: string, path: string, json?: unknown) => {
    const res = await fetch(`${lb()}/2/projects/${project.id}${path}`, {
      method,
      headers: { authorization: `OAuth ${project.token}`, 'content-type': 'application/json' },
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    const text = await res.text();
    if (!(res.headers.get('content-type') ?? '').includes('application/json')) {
      return { status: res.status, body: text as any };
    }
    return { status: res.status, body: JSON.parse(text) };
  };
  const queue = async (script: string, cluster = 'default'): Promise<string> => {
    const created = await api('POST', '/tasks', {
      tasks: [{ code_name: 'rolling', payload: script, cluster }],
    });
    expect(created.status).toBe(200);
    return created.body.tasks[0].id;
  };
  const row = async (id: string) =>
    (await db.query('SELECT status, attempt, worker_id FROM tasks WHERE id = $1', [id])).rows[0];
  const logOf = async (id: string) =>
    (await db.query('SELECT data FROM task_log_chunks WHERE task_id = $1 ORDER BY seq', [id])).rows
      .map((r: { data: string }) => r.data)
      .join('');

  const bothUp = () => balancer.allUp();

  const startApi = (index: number) => async () => {
    const child = stack.start('api', { KILN_API_PORT: String(apiPorts[index]) }, `api-${index}`);
    await waitForHealthy(`http://127.0.0.1:${apiPorts[index]}/healthz`);
    return child;
  };
  const startScheduler = (index: number) => async () => {
    const port = await freePort();
    const child = stack.start(
      'scheduler',
      { KILN_SCHEDULER_ID: `rolling-scheduler-${index}`, KILN_SCHEDULER_HEALTH_PORT: String(port) },
      `scheduler-${index}`,
    );
    await waitForHealthy(`http://127.0.0.1:${port}/healthz`);
    return child;
  };
  const startWorker = (index: number) => () => stack.startWorker({}, `worker-${index}`);
  const run = async (label: string, start: () => Promise<ChildProcess>) =>
    processes.set(label, { child: await start(), start });
  /** SIGTERM, wait for the exit, start it again and wait until it is healthy. */
  const restart = async (label: string) => {
    const entry = processes.get(label)!;
    await stopApp(entry.child, 60_000);
    entry.child = await entry.start();
  };

  beforeAll(async () => {
    apiPorts.push(stack.port, stack.port + 1);
    await stack.create({
      KILN_API_DRAIN_SECONDS: String(DRAIN_SECONDS),
      KILN_WORKER_SHUTDOWN_GRACE_SECONDS: '30',
      KILN_WORKER_CONCURRENCY: '4',
      KILN_WORKER_HEARTBEAT_SECONDS: '2',
      KILN_TRUSTED_PROXIES: 'loopback',
    });
    balancer = new Balancer(apiPorts);
    await balancer.start();
    await run('api-0', startApi(0));
    await run('api-1', startApi(1));
    await run('scheduler-0', startScheduler(0));
    await run('scheduler-1', startScheduler(1));
    await run('worker-0', startWorker(0));
    await run('worker-1', startWorker(1));
    await bothUp();
    db = new Client({ connectionString: stack.database.url });
    await db.connect();
    project = await stack.newProject('rolling');
    await stack.grant(project.id, 'handback');
    const code = await api('POST', '/codes', {
      name: 'rolling',
      image: TEST_IMAGE,
      command: 'sh /mnt/kiln/payload.json',
    });
    expect(code.status).toBe(200);
  }, 180_000);

  afterAll(async () => {
    await db?.end();
    balancer?.close();
    await stack.close();
  });

  it("a draining API answers /healthz 503 while it still serves, and closes each answer's connection", async () => {
    const entry = processes.get('api-0')!;
    const exited = new Promise((resolve) => entry.child.once('exit', resolve));
    entry.child.kill('SIGTERM');
    const direct = `http://127.0.0.1:${apiPorts[0]}`;
    let health: Response | undefined;
    await waitUntil('/healthz to say draining', async () => {
      health = await fetch(`${direct}/healthz`);
      return health.status === 503;
    });
    expect(await health!.json()).toEqual({ status: 'draining' });
    const served = await fetch(`${direct}/2/projects/${project.id}/tasks`, {
      headers: { authorization: `OAuth ${project.token}` },
    });
    expect(served.status).toBe(200);
    expect(served.headers.get('connection')).toBe('close');
    await exited;
    entry.child = await entry.start();
    await bothUp();
  });

  it('a stopping worker lets its running task finish within its grace', async () => {
    const id = await queue('sleep 3; echo finished');
    let seen: any;
    await waitUntil('the task to run', async () => (seen = await row(id)).status === 'running', {
      timeoutMs: 30_000,
    });
    const label = `worker-${seen.worker_id.endsWith('worker-0') ? 0 : 1}`;
    const entry = processes.get(label)!;
    const exited = new Promise((resolve) => entry.child.once('exit', resolve));
    entry.child.kill('SIGTERM');
    await exited;
    // It exited once the task had ended, as it ended: no hand-back, no second run.
    expect(await row(id)).toMatchObject({ status: 'complete', attempt: 1 });
    expect(await logOf(id)).toBe('finished\n');
    entry.child = await entry.start();
  });

  it('past its grace, a stopping worker kills its task and hands it back to the queue', async () => {
    const first = await stack.startWorker(
      { KILN_WORKER_CLUSTER: 'handback', KILN_WORKER_SHUTDOWN_GRACE_SECONDS: '1' },
      'handback-0',
    );
    const id = await queue('echo started; sleep 8; echo finished', 'handback');
    await waitUntil('the task to run', async () => (await row(id)).status === 'running', {
      timeoutMs: 30_000,
    });
    const stopping = Date.now();
    await stopApp(first);
    // Gone before the task would have ended (8 s), the task handed back by the worker itself
    // (no other worker of the cluster runs yet, and its heartbeat lapse has not come).
    expect(Date.now() - stopping).toBeLessThan(15_000);
    expect(await row(id)).toMatchObject({ status: 'queued', worker_id: null, attempt: 1 });
    const second = await stack.startWorker({ KILN_WORKER_CLUSTER: 'handback' }, 'handback-1');
    await waitUntil('the task to end', async () => (await row(id)).status === 'complete', {
      timeoutMs: 60_000,
    });
    expect(await row(id)).toMatchObject({ status: 'complete', attempt: 2 });
    expect(await logOf(id)).toContain('finished\n');
    await stopApp(second);
  });

  it(`a rolling restart of every process during a ${TASKS}-task run loses no task, runs none twice and fails no request`, async () => {
    const failures: string[] = [];
    let phase = 'start';
    const note = (what: string, status: number | string) =>
      failures.push(`${what}: ${status} (${phase})`);
    const ids: string[] = [];
    let loading = true;

    const projectTasks = async () =>
      (await db.query('SELECT count(*)::int AS n FROM tasks WHERE project_id = $1', [project.id]))
        .rows[0].n as number;
    const before = await projectTasks();
    // A live-log follower through the balancer, across both API restarts.
    const followed = await queue(
      'i=1; while [ $i -le 20 ]; do echo line-$i; i=$((i+1)); sleep 1; done',
    );
    const kiln = new Kiln({ url: lb(), projectId: project.id, token: project.token });
    const lines: string[] = [];
    const following = (async () => {
      for await (const line of kiln.tasks.follow(followed, { reconnects: 10 })) lines.push(line);
    })();

    // The balancer's clients: batches of 10 tasks, and reads of a task and of the list.
    const load = (async () => {
      while (ids.length < TASKS) {
        try {
          const created = await api('POST', '/tasks', {
            tasks: Array.from({ length: 10 }, () => ({
              code_name: 'rolling',
              payload: 'echo ran',
            })),
          });
          if (created.status !== 200) note('POST tasks', created.status);
          else ids.push(...created.body.tasks.map((t: { id: string }) => t.id));
          const read = await api('GET', `/tasks/${ids[ids.length - 1] ?? followed}`);
          if (read.status !== 200) note('GET task', read.status);
          const list = await api('GET', '/tasks?per_page=30');
          if (list.status !== 200) note('GET tasks', list.status);
        } catch (error) {
          note('request', (error as Error).message);
        }
        await sleep(150);
      }
      while (loading) {
        try {
          const read = await api('GET', `/tasks/${ids[Math.floor(Math.random() * ids.length)]}`);
          if (read.status !== 200) note('GET task', read.status);
        } catch (error) {
          note('request', (error as Error).message);
        }
        await sleep(50);
      }
    })();

    for (const label of ['api-0', 'api-1', 'scheduler-0', 'scheduler-1', 'worker-0', 'worker-1']) {
      phase = `restarting ${label}`;
      await restart(label);
      phase = `after ${label}`;
      if (label.startsWith('api')) await bothUp();
    }
    const finals = async () =>
      (
        await db.query(
          `SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1) AND status IN ('complete', 'error', 'killed', 'timeout', 'cancelled')`,
          [ids],
        )
      ).rows[0].n;
    await waitUntil(
      `all ${TASKS} tasks to end`,
      async () => (await finals()) === ids.length && ids.length >= TASKS,
      {
        timeoutMs: 240_000,
        intervalMs: 1000,
        state: async () => `${await finals()} of ${ids.length} ended`,
      },
    );
    loading = false;
    await load;
    await following;

    expect(failures).toEqual([]);
    expect(ids.length).toBe(TASKS);
    // Nothing created twice behind the clients' backs (the balancer retries no request a replica
    // received): the follower's task and the batches, no more.
    expect(await projectTasks()).toBe(before + 1 + TASKS);
    const { rows } = await db.query(
      `SELECT t.status, t.attempt, string_agg(c.data, '' ORDER BY c.seq) AS log
         FROM tasks t LEFT JOIN task_log_chunks c ON c.task_id = t.id
        WHERE t.id = ANY($1) GROUP BY t.id`,
      [ids],
    );
    expect(rows).toHaveLength(TASKS);
    // Each ran exactly once: complete on its first attempt, its output printed once.
    expect(
      rows.filter((r) => r.status !== 'complete' || r.attempt !== 1 || r.log !== 'ran\n'),
    ).toEqual([]);
    // The follower saw every line once, in order, across both API replicas' restarts.
    expect(lines).toEqual(Array.from({ length: 20 }, (_, i) => `line-${i + 1}`));
    expect(await row(followed)).toMatchObject({ status: 'complete', attempt: 1 });
  });
});
