import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { waitUntil } from './support/kiln';
import { OwnStack } from './support/own-stack';
import { sleep } from './support/processes';
import { TcpProxy } from './support/proxy';
import { Receiver } from './support/receiver';

const LAPSE_SECONDS = 20;
const OUTAGE_MS = 90_000;

/**
 * A stack of its own (API, scheduler and two workers, each on a cluster of its own) whose every
 * process reaches Postgres through a proxy this suite cuts: Postgres goes away for longer than the
 * heartbeat lapse while tasks end. No task may run twice, lose output or emit an event twice; a
 * worker killed with `kill -9` and started again recovers its tasks at once.
 */
describe('outcomes survive outages; restarted workers recover at once', () => {
  const stack = new OwnStack('durable', 30);
  const journalDir = mkdtempSync(join(tmpdir(), 'kiln-durable-journal-'));
  const receiver = new Receiver();
  let proxy: TcpProxy;
  let proxyUp = true;
  let db: Client;
  let project: { id: string; token: string };

  const workers = new Map<string, ChildProcess>();
  const worker = (cluster: string) =>
    workers.set(
      cluster,
      stack.start(
        'worker',
        { KILN_WORKER_ID: `durable-${cluster}`, KILN_WORKER_CLUSTER: cluster },
        `worker-${cluster}`,
      ),
    );
  /** `kill -9` of the worker of `cluster`; resolves once it is gone. */
  const killWorker = async (cluster: string) => {
    const child = workers.get(cluster)!;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  };

  const api = async (method: string, path: string, json?: unknown) =>
    (await stack.request(method, path, json, project.token)).body;
  const queue = async (cluster: string, script: string): Promise<string> => {
    const created = await api('POST', `/2/projects/${project.id}/tasks`, {
      tasks: [{ code_name: 'durable', cluster, payload: script }],
    });
    return created.tasks[0].id;
  };
  const row = async (id: string) =>
    (await db.query('SELECT status, attempt, worker_id FROM tasks WHERE id = $1', [id])).rows[0];
  /** The rows of `ids`, one query after another (one client runs one query at a time). */
  const taskRows = async (ids: string[]) => {
    const found = [];
    for (const id of ids) found.push(await row(id));
    return found;
  };
  /** How the project's tasks and the heard events stand: what a failed wait reports. */
  const state = async () => {
    const { rows } = await db.query(
      'SELECT id, status, attempt, worker_id, msg FROM tasks WHERE project_id = $1',
      [project.id],
    );
    const heard = receiver.received.map((r) => `${r.json?.data?.task_id} ${r.json?.type}`);
    return `tasks ${JSON.stringify(rows)}; events ${JSON.stringify(heard)}`;
  };
  const until = (what: string, check: () => Promise<boolean>, timeoutMs: number) =>
    waitUntil(what, check, { timeoutMs, state });

  const log = async (id: string) => {
    const rows = await db.query(
      'SELECT data FROM task_log_chunks WHERE task_id = $1 ORDER BY seq',
      [id],
    );
    return rows.rows.map((r: { data: string }) => r.data).join('');
  };
  /** Events of a task, each counted once by its `webhook-id` (deliveries are at least once). */
  const events = (id: string, type: string) =>
    new Set(
      receiver.received
        .filter((r) => r.json?.data?.task_id === id && r.json?.type === type)
        .map((r) => r.headers['webhook-id']),
    ).size;

  beforeAll(async () => {
    await receiver.start();
    const server = new URL(stack.database.url);
    proxy = new TcpProxy(server.hostname, Number(server.port));
    server.port = String(await proxy.start());
    await stack.create(
      {
        KILN_HEARTBEAT_LAPSE_SECONDS: String(LAPSE_SECONDS),
        KILN_WORKER_HEARTBEAT_SECONDS: '2',
        KILN_WORKER_HEALTH_PORT: '0',
        KILN_WORKER_CONCURRENCY: '2',
        KILN_WORKER_JOURNAL_DIR: journalDir,
      },
      server.toString(),
    );
    await stack.startApi();
    stack.start('scheduler');
    worker('a');
    worker('b');
    db = new Client({ connectionString: stack.database.url });
    await db.connect();
    project = await stack.newProject('durable');
    await stack.grant(project.id, 'a');
    await stack.grant(project.id, 'b');
    await api('POST', `/2/projects/${project.id}/codes`, {
      name: 'durable',
      image: 'kiln-test/busybox:latest',
      command: 'sh /mnt/kiln/payload.json',
    });
    await api('POST', `/2/projects/${project.id}/webhooks`, {
      url: `http://127.0.0.1:${receiver.port}/hook`,
      events: ['task.running', 'task.complete', 'task.error'],
    });
  }, 120_000);

  afterAll(async () => {
    if (!proxyUp) await proxy.restore(); // the processes stop cleanly with their database
    await db?.end();
    await stack.close();
    await proxy.close();
    await receiver.close();
    rmSync(journalDir, { recursive: true, force: true });
  });

  it('Postgres away for 90 s while tasks end, one worker killed and restarted meanwhile: each task ends complete on attempt 1, ran once, log intact, one running and one complete event', async () => {
    // (a) on worker a, which lives through the outage; (b) on worker b, killed during it: b1 ends
    // before the kill (its outcome is in b's journal), b2 after it (only Docker knows its end).
    const a = await queue('a', 'echo a-start; sleep 8; echo a-end');
    const b1 = await queue('b', 'echo b1-start; sleep 8; echo b1-end');
    const b2 = await queue('b', 'echo b2-start; echo b2-end; sleep 28');
    const tasks = [a, b1, b2];
    // Every task running, and its running event heard, before Postgres goes.
    await until(
      'tasks running',
      async () =>
        (await taskRows(tasks)).every((t) => t.status === 'running') &&
        tasks.every((id) => events(id, 'task.running') === 1),
      60_000,
    );
    // What they printed before the outage is stored (b2 prints all it will print at once); what
    // a and b1 print next, Postgres away, is kept by their workers (b1's in b's journal).
    const printed: Record<string, string> = {
      [a]: 'a-start\n',
      [b1]: 'b1-start\n',
      [b2]: 'b2-start\nb2-end\n',
    };
    await until(
      'output before the outage stored',
      async () => {
        for (const id of tasks) if ((await log(id)) !== printed[id]) return false;
        return true;
      },
      10_000,
    );
    // The outage's timeline, fixed waits (nothing to wait for: Postgres is away): 15 s in, worker
    // b is killed; 3 s later it starts again; at OUTAGE_MS Postgres comes back.
    const lostAt = Date.now();
    await proxy.cut();
    proxyUp = false;
    await sleep(15_000);
    await killWorker('b');
    await sleep(3000);
    worker('b'); // waits for Postgres; b2's container exits while it does
    await sleep(lostAt + OUTAGE_MS - Date.now());
    await proxy.restore();
    proxyUp = true;

    await until(
      'tasks complete',
      async () => (await taskRows(tasks)).every((t) => t.status === 'complete'),
      60_000,
    );
    for (const id of tasks) {
      expect(await row(id)).toMatchObject({ status: 'complete', attempt: 1 });
    }
    expect(await log(a)).toBe('a-start\na-end\n');
    expect(await log(b1)).toBe('b1-start\nb1-end\n');
    expect(await log(b2)).toBe(
      'b2-start\nb2-end\n\n[kiln: the worker restarted while this task ran; output printed after that is missing]\n',
    );
    await until(
      'complete events',
      async () => tasks.every((id) => events(id, 'task.complete') === 1),
      30_000,
    );
    for (const id of tasks) {
      expect({
        running: events(id, 'task.running'),
        complete: events(id, 'task.complete'),
      }).toEqual({
        running: 1,
        complete: 1,
      });
    }
    // No automatic retry, no second attempt: each task's row is the only one.
    const { rows } = await db.query('SELECT count(*)::int AS n FROM tasks WHERE project_id = $1', [
      project.id,
    ]);
    expect(rows[0].n).toBe(3);
  }, 240_000);

  it('worker kill -9 and an immediate restart: every task it held runs again within 10 s', async () => {
    const held = [await queue('b', 'echo c1; sleep 300'), await queue('b', 'echo c2; sleep 300')];
    await until(
      'tasks running',
      async () => (await taskRows(held)).every((t) => t.status === 'running'),
      60_000,
    );
    const killedAt = Date.now();
    await killWorker('b');
    worker('b');
    await until(
      'tasks running again',
      async () => (await taskRows(held)).every((t) => t.status === 'running' && t.attempt === 2),
      30_000,
    );
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    for (const id of held) await api('POST', `/2/projects/${project.id}/tasks/${id}/cancel`);
  }, 120_000);
});
