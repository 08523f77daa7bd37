import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { waitUntil } from './support/kiln';
import { OwnStack } from './support/own-stack';
import { OwnPgBouncer } from './support/pgbouncer';
import { freePort, LOG_DIR, waitForHealthy } from './support/processes';
import { Receiver } from './support/receiver';

const PROBE = 'kiln_pgbouncer_probe';

/**
 * Kiln behind PgBouncer in transaction pooling (`DATABASE_POOL_MODE=transaction`): a stack of its
 * own whose API, worker and scheduler reach Postgres through a pgbouncer this suite starts, with
 * `DATABASE_DIRECT_URL` to Postgres for LISTEN and migrations. Everything a user does works; the
 * same pgbouncer breaks Kiln's named prepared statements when the mode is off (so the test is
 * real), and its own counters show the traffic went through it.
 */
describe('Postgres behind PgBouncer (transaction pooling)', () => {
  const stack = new OwnStack('pgbouncer', 100);
  const receiver = new Receiver();
  let bouncer: OwnPgBouncer;
  let direct: Client;
  let project: { id: string; token: string };
  /** Where each process's log stood before this suite: what it wrote is read from there. */
  const logStart = new Map<string, number>();

  const api = (method: string, path: string, json?: unknown) =>
    stack.projectApi(project)(method, path, json);
  const queue = async (tasks: Record<string, unknown>[]): Promise<string[]> =>
    (await api('POST', '/tasks', { tasks })).tasks.map((task: { id: string }) => task.id);
  const task = (id: string) => api('GET', `/tasks/${id}`);
  /** GET …/tasks/{id}/log: the task's log as plain text. */
  const logText = async (id: string) => {
    const res = await fetch(`${stack.url}/2/projects/${project.id}/tasks/${id}/log`, {
      headers: { authorization: `OAuth ${project.token}` },
    });
    expect(res.status).toBe(200);
    return res.text();
  };
  const state = async () => {
    const { rows } = await direct.query(
      'SELECT id, status, attempt, msg FROM tasks WHERE project_id = $1 ORDER BY id',
      [project.id],
    );
    return `tasks ${JSON.stringify(rows)}`;
  };
  /** Waits for every task of `ids` to end; resolves with them as GET …/tasks/{id} shows them. */
  const ended = async (ids: string[], timeoutMs = 90_000) => {
    let seen: any[] = [];
    await waitUntil(
      `${ids.length} tasks ended`,
      async () => {
        seen = await Promise.all(ids.map(task));
        return seen.every((t) => !['queued', 'preparing', 'running'].includes(t.status));
      },
      { timeoutMs, intervalMs: 300, state },
    );
    return seen;
  };
  const logFile = (label: string) => join(LOG_DIR, `pgbouncer-${label}.log`);
  const sizeOf = (file: string) => {
    try {
      return statSync(file).size;
    } catch {
      return 0;
    }
  };
  /** What a process of the stack logged in this run. */
  const logged = (label: string) => {
    const file = logFile(label);
    const from = logStart.get(label) ?? 0;
    const length = sizeOf(file) - from;
    if (length <= 0) return '';
    const buffer = Buffer.alloc(length);
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buffer, 0, length, from);
    } finally {
      closeSync(fd);
    }
    return buffer.toString('utf8');
  };

  beforeAll(async () => {
    await receiver.start();
    bouncer = new OwnPgBouncer({
      // Fewer server connections than the stack's clients (3 processes × 20): they are shared.
      poolSize: 8,
      // One server connection only: two clients' named statements meet on it.
      aliases: [{ name: PROBE, dbname: stack.database.name, poolSize: 1 }],
    });
    await bouncer.start();
    for (const label of ['api', 'worker', 'scheduler', 'api-named', 'api-unnamed']) {
      logStart.set(label, sizeOf(logFile(label)));
    }
    await stack.create(
      {
        DATABASE_POOL_MODE: 'transaction',
        DATABASE_DIRECT_URL: stack.database.url,
        KILN_WORKER_CONCURRENCY: '4',
        // A live worker's tasks never lapse, however slow the machine: attempt 2 is a real re-run.
        KILN_WORKER_HEARTBEAT_SECONDS: '2',
        KILN_HEARTBEAT_LAPSE_SECONDS: '30',
      },
      bouncer.url(stack.database.url),
    );
    await stack.startApi();
    stack.start('scheduler');
    await stack.startWorker();
    direct = new Client({ connectionString: stack.database.url });
    await direct.connect();
    project = await stack.newProject('pgbouncer');
    await api('POST', '/codes', { name: 'hello', image: 'kiln-test/busybox:latest' });
    await api('POST', '/codes', {
      name: 'flaky',
      image: 'kiln-test/busybox:latest',
      retries: 1,
      retries_delay: 0,
    });
    await api('POST', '/webhooks', {
      url: `http://127.0.0.1:${receiver.port}/hook`,
      events: ['task.complete', 'task.error'],
    });
  }, 120_000);

  afterAll(async () => {
    await direct?.end();
    await stack.close();
    await bouncer?.stop();
    await receiver.close();
  });

  it('runs everything through it: codes, single and batch tasks, logs, follow, lists, retries, schedules, webhooks', async () => {
    const before = await bouncer.admin('SHOW STATS');
    const xacts = (rows: Record<string, unknown>[]) =>
      Number(rows.find((row) => row.database === stack.database.name)?.total_xact_count ?? 0);

    const code = (await api('GET', '/codes')).codes.find(
      (c: { name: string }) => c.name === 'hello',
    );
    expect(await api('GET', `/codes/${code.id}`)).toMatchObject({ name: 'hello', rev: 1 });

    const [single] = await queue([{ code_name: 'hello', payload: '{"n":"single"}' }]);
    const batch = await queue(
      Array.from({ length: 40 }, (_, n) => ({ code_name: 'hello', payload: `{"n":${n}}` })),
    );
    // A task that prints for a while, followed live (`?follow=1`) from its start to its end.
    const [slow] = await queue([{ code_name: 'hello', payload: '{"lines":5, "interval":0.4}' }]);
    const followed = await fetch(
      `${stack.url}/2/projects/${project.id}/tasks/${slow}/log?follow=1`,
      { headers: { authorization: `OAuth ${project.token}` } },
    );
    expect(followed.status).toBe(200);
    const [flaky] = await queue([{ code_name: 'flaky', payload: '{"exit":3}' }]);
    const startAt = new Date(Date.now() + 2000).toISOString();
    const schedule = (
      await api('POST', '/schedules', {
        schedules: [
          { code_name: 'hello', payload: '{"n":"scheduled"}', start_at: startAt, run_times: 1 },
        ],
      })
    ).schedules[0].id;

    const all = [single, ...batch, slow];
    const done = await ended(all);
    expect(done.map((t) => `${t.id} ${t.status}`)).toEqual(all.map((id) => `${id} complete`));
    // Each ran once, its log whole (the test image prints its payload first).
    const rows = await direct.query(
      'SELECT id, attempt FROM tasks WHERE id = ANY($1) AND attempt <> 1',
      [all],
    );
    expect(rows.rows).toEqual([]);
    expect(await logText(single)).toBe('{"n":"single"}\n');
    for (const [n, id] of batch.entries()) expect(await logText(id)).toBe(`{"n":${n}}\n`);
    const slowLog = '{"lines":5, "interval":0.4}\nline 1\nline 2\nline 3\nline 4\nline 5\n';
    expect(await followed.text()).toBe(slowLog);

    // Lists: every task of the code, and by status.
    const listed = await api('GET', '/tasks?code_name=hello&per_page=100');
    expect(listed.tasks.map((t: { id: string }) => t.id)).toEqual(expect.arrayContaining(all));

    // The automatic retry: the first attempt errs, the retry (queued in the worker's
    // transaction) errs too, and the chain ends there.
    const first = (await ended([flaky]))[0];
    expect(first).toMatchObject({ status: 'error', retry_task_id: expect.any(String) });
    const retry = (await ended([first.retry_task_id]))[0];
    expect(retry).toMatchObject({ status: 'error', retry_count: 1, original_task_id: flaky });

    // The schedule fired once, its task ran.
    let fired: { id: string; status: string }[] = [];
    await waitUntil(
      'the scheduled task complete',
      async () => {
        fired = (
          await direct.query('SELECT id, status FROM tasks WHERE schedule_id = $1', [schedule])
        ).rows;
        return fired.length === 1 && fired[0].status === 'complete';
      },
      { timeoutMs: 60_000, intervalMs: 300, state: async () => JSON.stringify(fired) },
    );

    // Webhooks: each final event delivered (the dispatcher woken by NOTIFY over its direct LISTEN).
    const heard = () =>
      new Set(receiver.received.map((r) => `${r.json?.data?.task_id} ${r.json?.type}`));
    const expected = [
      ...all.map((id) => `${id} task.complete`),
      `${fired[0].id} task.complete`,
      `${flaky} task.error`,
      `${first.retry_task_id} task.error`,
    ];
    await waitUntil('webhooks delivered', () => expected.every((e) => heard().has(e)), {
      timeoutMs: 30_000,
      state: () => JSON.stringify([...heard()]),
    });

    // The LISTEN is a session of Postgres itself, not of the pooler.
    const listening = await direct.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND query = 'LISTEN kiln_webhooks'`,
      [stack.database.name],
    );
    expect(listening.rows[0].n).toBeGreaterThanOrEqual(1);
    // The traffic went through pgbouncer: its transactions for this database grew by hundreds,
    // from the clients of all three processes.
    expect(xacts(await bouncer.admin('SHOW STATS')) - xacts(before)).toBeGreaterThan(300);
    const clients = (await bouncer.admin('SHOW CLIENTS')).filter(
      (row) => row.database === stack.database.name,
    );
    expect(clients.length).toBeGreaterThanOrEqual(3);
    // And no process met a statement the pooler could not carry.
    for (const label of ['api', 'worker', 'scheduler']) {
      expect(logged(label)).not.toMatch(/prepared statement/);
    }
  }, 240_000);

  it('named prepared statements do break through it: two clients of one server connection', async () => {
    const a = new Client({ connectionString: bouncer.aliasUrl(PROBE) });
    const b = new Client({ connectionString: bouncer.aliasUrl(PROBE) });
    await a.connect();
    await b.connect();
    try {
      const named = { name: 'kiln-probe', text: 'SELECT $1::int AS n', values: [1] };
      await expect(a.query(named)).resolves.toMatchObject({ rows: [{ n: 1 }] });
      await expect(b.query(named)).rejects.toThrow(
        /prepared statement "kiln-probe" already exists/,
      );
      // Unnamed, the same statement is fine from both.
      await expect(a.query(named.text, [2])).resolves.toMatchObject({ rows: [{ n: 2 }] });
      await expect(b.query(named.text, [3])).resolves.toMatchObject({ rows: [{ n: 3 }] });
    } finally {
      await a.end();
      await b.end();
    }
  });

  it("Kiln's reads through one server connection: they fail with the mode off, succeed with it on", async () => {
    const ids = await queue(
      Array.from({ length: 4 }, (_, n) => ({ code_name: 'hello', payload: `{"probe":${n}}` })),
    );
    const reads = async (label: string, mode: string) => {
      const port = await freePort();
      const child = stack.start(
        'api',
        {
          KILN_API_PORT: String(port),
          DATABASE_URL: bouncer.aliasUrl(PROBE),
          DATABASE_POOL_MODE: mode,
        },
        label,
      );
      try {
        await waitForHealthy(`http://127.0.0.1:${port}/healthz`);
        // Concurrent reads: the API's pool opens several clients, all on the one server connection.
        const statuses: number[] = [];
        for (let round = 0; round < 3; round++) {
          const answers = await Promise.all(
            Array.from({ length: 12 }, (_, n) =>
              fetch(`http://127.0.0.1:${port}/2/projects/${project.id}/tasks/${ids[n % 4]}`, {
                headers: { authorization: `OAuth ${project.token}` },
              }).then((res) => res.status),
            ),
          );
          statuses.push(...answers);
        }
        return statuses;
      } finally {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
    };
    const named = await reads('api-named', 'session');
    expect(named.filter((status) => status !== 200).length).toBeGreaterThan(0);
    // (The log redacts the statement's name.)
    expect(logged('api-named')).toMatch(
      /prepared statement .{1,40} (already exists|does not exist)/,
    );
    const unnamed = await reads('api-unnamed', 'transaction');
    expect(unnamed).toEqual(unnamed.map(() => 200));
  }, 120_000);
});
